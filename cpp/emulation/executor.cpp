// SPDX-License-Identifier: BSD-3-Clause
// Executors and runtime API of the CUDA-on-host emulation (see cuda_runtime.h).
//
// fibers (default): every CUDA thread of a block is a fiber on the launching OS thread.
//   A fiber runs until it reaches __syncthreads or __ballot_sync, or returns; when no fiber
//   can run, the waiting ones are released if the CUDA rules allow it (all lanes of the
//   ballot's mask at the same ballot; every thread of the block at the same barrier), and
//   the launch aborts with a message otherwise. Ready fibers resume in ascending,
//   descending or shuffled order (CUPATCH_EMULATE_ORDER, seed CUPATCH_EMULATE_SEED), and
//   blocks run in the same order, so code that leans on an unsynchronised order of threads
//   or blocks gives different answers in different orders.
// threads (CUPATCH_EMULATE_EXECUTOR=threads): one OS thread per CUDA thread with real
//   barriers, for ThreadSanitizer to see the shared-memory accesses of a block race.
//
// Blocks run one after another and launches are serialised, so each kernel's __shared__
// statics are the memory of the one block resident at a time.
#include "cuda_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CUPATCH_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUPATCH_EMU_ASAN 1
#endif
#endif
#ifdef CUPATCH_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim{1, 1, 1};
thread_local dim3 gridDim{1, 1, 1};

namespace cupatch_emu {

// Misuse of CUDA that a GPU would answer with a hang or undefined behaviour: say what and
// where, then abort (the scheduler's state cannot be unwound into a C++ exception).
[[noreturn]] void fail(const std::string& message) {
    std::fprintf(stderr, "cupatch CUDA emulation: %s\n", message.c_str());
    std::fflush(stderr);
    std::abort();
}

namespace {

std::string block_name() {
    return "block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + ")";
}

enum class Order { ascending, descending, shuffled };
enum class ExecutorKind { fibers, threads };

struct Config {
    ExecutorKind executor = ExecutorKind::fibers;
    Order order = Order::ascending;
    std::uint64_t seed = 0;
};

Config config_from_environment() {
    Config c;
    if (const char* e = std::getenv("CUPATCH_EMULATE_EXECUTOR"); e && *e) {
        if (!std::strcmp(e, "threads"))
            c.executor = ExecutorKind::threads;
        else if (std::strcmp(e, "fibers"))
            fail(std::string("CUPATCH_EMULATE_EXECUTOR must be 'fibers' or 'threads', got '") + e + "'");
    }
    if (const char* e = std::getenv("CUPATCH_EMULATE_ORDER"); e && *e) {
        if (!std::strcmp(e, "descending"))
            c.order = Order::descending;
        else if (!std::strcmp(e, "shuffled"))
            c.order = Order::shuffled;
        else if (std::strcmp(e, "ascending"))
            fail(std::string("CUPATCH_EMULATE_ORDER must be 'ascending', 'descending' or 'shuffled', got '") + e + "'");
    }
    if (const char* e = std::getenv("CUPATCH_EMULATE_SEED"); e && *e) c.seed = std::strtoull(e, nullptr, 10);
    return c;
}

// The block being run on this OS thread, for the scheduling points to find.
struct Executor {
    virtual void syncthreads(const char* site) = 0;
    virtual unsigned ballot_sync(unsigned mask, bool predicate, const char* site) = 0;
    virtual ~Executor() = default;
};
thread_local Executor* current_executor = nullptr;

// The kernels' __shared__ variables (cuda_runtime.h); the linker defines the bounds. A weak
// placeholder keeps the section present in a program whose kernels declare none.
extern "C" char __start_cupatch_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_cupatch_emu_shared[] __attribute__((weak, visibility("hidden")));

void poison_shared_memory() {
    if (__start_cupatch_emu_shared && __stop_cupatch_emu_shared > __start_cupatch_emu_shared)
        std::memset(__start_cupatch_emu_shared, 0xFF,
                    static_cast<std::size_t>(__stop_cupatch_emu_shared - __start_cupatch_emu_shared));
}

uint3 unravel(unsigned linear, dim3 shape) {
    return uint3{linear % shape.x, (linear / shape.x) % shape.y, linear / (shape.x * shape.y)};
}

// Block (or thread) visiting order.
std::vector<unsigned> visiting_order(unsigned n, Order order, std::mt19937_64& rng) {
    std::vector<unsigned> v(n);
    for (unsigned i = 0; i < n; ++i) v[i] = i;
    if (order == Order::descending) std::reverse(v.begin(), v.end());
    if (order == Order::shuffled) std::shuffle(v.begin(), v.end(), rng);
    return v;
}

// ---- fibers ----------------------------------------------------------------------------
// A hand-written switch of the callee-saved registers: swapcontext() also saves the signal
// mask with a system call per switch, which makes it about ten times slower.
#if defined(__x86_64__)
extern "C" void cupatch_emu_switch(void** save_sp, void* load_sp);
extern "C" void cupatch_emu_trampoline();
asm(R"(
    .text
    .globl cupatch_emu_switch
    .hidden cupatch_emu_switch
    .type cupatch_emu_switch,@function
cupatch_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cupatch_emu_switch,.-cupatch_emu_switch

    .globl cupatch_emu_trampoline
    .hidden cupatch_emu_trampoline
    .type cupatch_emu_trampoline,@function
cupatch_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cupatch_emu_trampoline,.-cupatch_emu_trampoline
)");
#endif

constexpr std::size_t kStackBytes = std::size_t(256) << 10;

struct Fiber;
void fiber_main(Fiber* f) noexcept;

enum class State { ready, at_sync, at_ballot, done };

struct Fiber {
    uint3 tid{};
    State state = State::ready;
    const char* site = nullptr;
    unsigned mask = 0;
    bool predicate = false;
    unsigned result = 0;
    char* stack_lo = nullptr;  // usable stack [stack_lo, stack_lo + kStackBytes), a guard page below
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t context{};
#endif
    struct FiberBlock* block = nullptr;
#ifdef CUPATCH_EMU_ASAN
    void* fake_stack = nullptr;
#endif
};

struct FiberBlock final : Executor {
    KernelBody body{};
    std::vector<Fiber> fibers;
    Fiber* running = nullptr;
#if defined(__x86_64__)
    void* scheduler_sp = nullptr;
#else
    ucontext_t scheduler_context{};
#endif
#ifdef CUPATCH_EMU_ASAN
    const void* scheduler_stack = nullptr;
    std::size_t scheduler_stack_size = 0;
#endif

    ~FiberBlock() override {
        for (Fiber& f : fibers)
            if (f.stack_lo) munmap(f.stack_lo - page(), kStackBytes + page());
    }

    static std::size_t page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

    void ensure_fibers(unsigned n) {
        if (fibers.size() >= n) return;
        const std::size_t old = fibers.size();
        fibers.resize(n);
        for (std::size_t i = old; i < n; ++i) {
            void* m = mmap(nullptr, kStackBytes + page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED) fail("cannot map a fiber stack");
            mprotect(m, page(), PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
            fibers[i].stack_lo = static_cast<char*>(m) + page();
        }
    }

    // Switch from the scheduler into fiber f until it waits or finishes.
    void resume(Fiber& f) {
        threadIdx = f.tid;
        running = &f;
#ifdef CUPATCH_EMU_ASAN
        void* fake = nullptr;
        __sanitizer_start_switch_fiber(&fake, f.stack_lo, kStackBytes);
#endif
#if defined(__x86_64__)
        cupatch_emu_switch(&scheduler_sp, f.sp);
#else
        swapcontext(&scheduler_context, &f.context);
#endif
#ifdef CUPATCH_EMU_ASAN
        __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
        running = nullptr;
    }

    // Switch from the running fiber back to the scheduler (for good when it has finished).
    void yield(Fiber& f) {
#ifdef CUPATCH_EMU_ASAN
        __sanitizer_start_switch_fiber(f.state == State::done ? nullptr : &f.fake_stack, scheduler_stack,
                                       scheduler_stack_size);
#endif
#if defined(__x86_64__)
        cupatch_emu_switch(&f.sp, scheduler_sp);
#else
        swapcontext(&f.context, &scheduler_context);
#endif
#ifdef CUPATCH_EMU_ASAN
        __sanitizer_finish_switch_fiber(f.fake_stack, &scheduler_stack, &scheduler_stack_size);
#endif
    }

    void start(Fiber& f, uint3 tid) {
        f.tid = tid;
        f.state = State::ready;
        f.site = nullptr;
        f.block = this;
#ifdef CUPATCH_EMU_ASAN
        __asan_unpoison_memory_region(f.stack_lo, kStackBytes);  // frames left by the fiber's previous use
#endif
#if defined(__x86_64__)
        // Initial frame popped by cupatch_emu_switch: control words, r15..r12, rbx, rbp, then
        // the return into the trampoline, which calls fiber_main(r12) with an aligned stack.
        void** top = reinterpret_cast<void**>(reinterpret_cast<std::uintptr_t>(f.stack_lo + kStackBytes) & ~std::uintptr_t(15));
        void** sp = top - 8;
        std::uint32_t control[2] = {_mm_getcsr(), 0};
        std::uint16_t fpu_cw;
        asm volatile("fnstcw %0" : "=m"(fpu_cw));
        control[1] = fpu_cw;
        std::memcpy(&sp[0], control, sizeof(void*));
        sp[1] = sp[2] = nullptr;                                     // r15, r14
        sp[3] = reinterpret_cast<void*>(&fiber_main);               // r13: entry
        sp[4] = &f;                                                  // r12: argument
        sp[5] = sp[6] = nullptr;                                     // rbx, rbp
        sp[7] = reinterpret_cast<void*>(&cupatch_emu_trampoline);  // return address
        f.sp = sp;
#else
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack_lo;
        f.context.uc_stack.ss_size = kStackBytes;
        f.context.uc_link = nullptr;
        makecontext(&f.context, reinterpret_cast<void (*)()>(&fiber_main_trampoline), 2,
                    static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(&f) >> 32),
                    static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(&f) & 0xffffffffu));
#endif
    }

#if !defined(__x86_64__)
    static void fiber_main_trampoline(unsigned hi, unsigned lo) {
        fiber_main(reinterpret_cast<Fiber*>((static_cast<std::uintptr_t>(hi) << 32) | lo));
    }
#endif

    void syncthreads(const char* site) override {
        Fiber& f = *running;
        f.state = State::at_sync;
        f.site = site;
        yield(f);
    }

    unsigned ballot_sync(unsigned mask, bool predicate, const char* site) override {
        Fiber& f = *running;
        f.state = State::at_ballot;
        f.site = site;
        f.mask = mask;
        f.predicate = predicate;
        yield(f);
        return f.result;
    }

    // Release the warps whose ballots are complete; abort where a ballot can never complete.
    bool release_ballots(unsigned n) {
        bool released = false;
        for (unsigned w0 = 0; w0 < n; w0 += 32) {
            const unsigned lanes = std::min(32u, n - w0);
            const Fiber* first = nullptr;
            for (unsigned l = 0; l < lanes; ++l)
                if (fibers[w0 + l].state == State::at_ballot) {
                    first = &fibers[w0 + l];
                    break;
                }
            if (!first) continue;
            const unsigned warp = w0 / 32;
            for (unsigned l = 0; l < lanes; ++l) {
                const Fiber& g = fibers[w0 + l];
                if (g.state == State::at_ballot && (std::strcmp(g.site, first->site) || g.mask != first->mask))
                    fail(block_name() + ": lanes of warp " + std::to_string(warp) + " reach different __ballot_sync calls (" +
                         first->site + " and " + g.site + ")");
            }
            unsigned votes = 0;
            for (unsigned l = 0; l < 32; ++l) {
                if (!(first->mask >> l & 1u)) continue;
                if (l >= lanes)
                    fail(block_name() + ": __ballot_sync at " + first->site + " names lane " + std::to_string(l) + " of warp " +
                         std::to_string(warp) + ", which does not exist");
                const Fiber& g = fibers[w0 + l];
                if (g.state == State::done)
                    fail(block_name() + ": lane " + std::to_string(l) + " of warp " + std::to_string(warp) +
                         " has exited while its warp waits at __ballot_sync (" + first->site + ")");
                if (g.state != State::at_ballot)
                    fail(block_name() + ": lane " + std::to_string(l) + " of warp " + std::to_string(warp) + " waits at " +
                         g.site + " while its warp waits at __ballot_sync (" + first->site + ")");
                if (g.predicate) votes |= 1u << l;
            }
            for (unsigned l = 0; l < lanes; ++l) {
                Fiber& g = fibers[w0 + l];
                if (g.state == State::at_ballot && (first->mask >> l & 1u)) {
                    g.result = votes;
                    g.state = State::ready;
                }
            }
            released = true;
        }
        return released;
    }

    // Release a complete __syncthreads; false when every thread has finished.
    bool release_barrier(unsigned n) {
        const Fiber* first = nullptr;
        for (unsigned t = 0; t < n; ++t)
            if (fibers[t].state == State::at_sync) {
                first = &fibers[t];
                break;
            }
        if (!first) return false;
        for (unsigned t = 0; t < n; ++t) {
            const Fiber& g = fibers[t];
            if (g.state == State::done)
                fail(block_name() + ": thread " + std::to_string(t) + " has exited while other threads wait at __syncthreads (" +
                     first->site + ")");
            if (std::strcmp(g.site, first->site))
                fail(block_name() + ": threads reach different __syncthreads calls (" + first->site + " and " + g.site + ")");
        }
        for (unsigned t = 0; t < n; ++t) fibers[t].state = State::ready;
        return true;
    }

    void run(const KernelBody& kernel, unsigned n, Order order, std::mt19937_64& rng) {
        body = kernel;
        poison_shared_memory();
        ensure_fibers(n);
        for (unsigned t = 0; t < n; ++t) start(fibers[t], unravel(t, blockDim));
        Executor* outer = current_executor;
        current_executor = this;
        for (;;) {
            bool ran = false;
            for (unsigned t : visiting_order(n, order, rng)) {
                if (fibers[t].state != State::ready) continue;
                resume(fibers[t]);
                ran = true;
            }
            if (ran) continue;
            if (release_ballots(n)) continue;
            if (!release_barrier(n)) break;
        }
        current_executor = outer;
    }
};

void fiber_main(Fiber* f) noexcept {
    FiberBlock& block = *f->block;
#ifdef CUPATCH_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &block.scheduler_stack, &block.scheduler_stack_size);
#endif
    block.body.call(block.body.closure);
    f->state = State::done;
    block.yield(*f);
    fail("a finished fiber was resumed");
}

// ---- OS threads ------------------------------------------------------------------------
struct ThreadBlock final : Executor {
    enum class Where { running, at_sync, at_ballot, done };
    struct Warp {
        int arrived = 0;
        unsigned generation = 0, votes = 0, result = 0, mask = 0;
        const char* site = nullptr;
    };

    unsigned n = 0;
    std::mutex m;
    std::condition_variable cv;
    std::vector<Where> where;
    std::vector<Warp> warps;
    int sync_arrived = 0;
    unsigned sync_generation = 0;
    const char* sync_site = nullptr;

    void reset(unsigned threads) {
        n = threads;
        where.assign(n, Where::running);
        warps.assign((n + 31) / 32, Warp{});
        sync_arrived = 0;
        sync_site = nullptr;
    }

    unsigned me() const { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

    // Abort if a lane of `warp` waits at a ballot whose mask names `lane` (which will never arrive).
    void check_ballot_waiters(unsigned t, const char* what) {
        const Warp& w = warps[t / 32];
        if (w.arrived > 0 && (w.mask >> (t % 32) & 1u))
            fail(block_name() + ": lane " + std::to_string(t % 32) + " of warp " + std::to_string(t / 32) + " " + what +
                 " while its warp waits at __ballot_sync (" + w.site + ")");
    }

    void syncthreads(const char* site) override {
        const unsigned t = me();
        std::unique_lock<std::mutex> lock(m);
        for (unsigned u = 0; u < n; ++u)
            if (where[u] == Where::done)
                fail(block_name() + ": thread " + std::to_string(u) + " has exited while other threads wait at __syncthreads (" +
                     site + ")");
        if (sync_arrived == 0)
            sync_site = site;
        else if (std::strcmp(site, sync_site))
            fail(block_name() + ": threads reach different __syncthreads calls (" + sync_site + " and " + site + ")");
        check_ballot_waiters(t, (std::string("waits at ") + site).c_str());
        where[t] = Where::at_sync;
        if (++sync_arrived == static_cast<int>(n)) {
            sync_arrived = 0;
            ++sync_generation;
            std::fill(where.begin(), where.end(), Where::running);
            cv.notify_all();
            return;
        }
        const unsigned generation = sync_generation;
        cv.wait(lock, [&] { return sync_generation != generation; });
    }

    unsigned ballot_sync(unsigned mask, bool predicate, const char* site) override {
        const unsigned t = me(), lane = t % 32, w0 = t - lane;
        std::unique_lock<std::mutex> lock(m);
        Warp& w = warps[t / 32];
        if (!(mask >> lane & 1u)) fail(block_name() + ": __ballot_sync at " + std::string(site) + " called by a lane outside its mask");
        if (w.arrived == 0) {
            w.site = site;
            w.mask = mask;
        } else if (std::strcmp(site, w.site) || mask != w.mask) {
            fail(block_name() + ": lanes of warp " + std::to_string(t / 32) + " reach different __ballot_sync calls (" + w.site +
                 " and " + site + ")");
        }
        int expected = 0;
        for (unsigned l = 0; l < 32; ++l) {
            if (!(mask >> l & 1u)) continue;
            if (w0 + l >= n) fail(block_name() + ": __ballot_sync at " + std::string(site) + " names a lane that does not exist");
            if (where[w0 + l] == Where::done || where[w0 + l] == Where::at_sync)
                fail(block_name() + ": lane " + std::to_string(l) + " of warp " + std::to_string(t / 32) +
                     (where[w0 + l] == Where::done ? " has exited" : " waits at __syncthreads") +
                     " while its warp waits at __ballot_sync (" + site + ")");
            ++expected;
        }
        where[t] = Where::at_ballot;
        if (predicate) w.votes |= 1u << lane;
        if (++w.arrived == expected) {
            w.result = w.votes;
            w.votes = 0;
            w.arrived = 0;
            ++w.generation;
            for (unsigned l = 0; l < 32; ++l)
                if (mask >> l & 1u) where[w0 + l] = Where::running;
            cv.notify_all();
            return w.result;
        }
        const unsigned generation = w.generation;
        cv.wait(lock, [&] { return w.generation != generation; });
        return w.result;
    }

    void exited() {
        const unsigned t = me();
        std::lock_guard<std::mutex> lock(m);
        if (sync_arrived > 0)
            fail(block_name() + ": thread " + std::to_string(t) + " has exited while other threads wait at __syncthreads (" +
                 sync_site + ")");
        check_ballot_waiters(t, "has exited");
        where[t] = Where::done;
    }
};

void run_threads(const KernelBody& body, dim3 grid, dim3 block, const std::vector<unsigned>& blocks) {
    const unsigned n = block.x * block.y * block.z;
    ThreadBlock tb;
    tb.reset(n);
    std::mutex m;
    std::condition_variable cv;
    unsigned finished = 0, generation = 0;
    auto worker = [&](unsigned t) {
        current_executor = &tb;
        gridDim = grid;
        blockDim = block;
        for (unsigned b : blocks) {
            blockIdx = unravel(b, grid);
            threadIdx = unravel(t, block);
            body.call(body.closure);
            tb.exited();
            // Every thread of this block has finished before the next block starts.
            std::unique_lock<std::mutex> lock(m);
            if (++finished == n) {
                finished = 0;
                ++generation;
                tb.reset(n);
                poison_shared_memory();
                cv.notify_all();
            } else {
                const unsigned g = generation;
                cv.wait(lock, [&] { return generation != g; });
            }
        }
        current_executor = nullptr;
    };
    poison_shared_memory();
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned t = 0; t < n; ++t) threads.emplace_back(worker, t);
    for (auto& th : threads) th.join();
}

// ---- launches --------------------------------------------------------------------------
std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}
FiberBlock& fiber_block() {  // used under the launch mutex only
    static FiberBlock* block = new FiberBlock;  // never destroyed: safe at interpreter exit
    return *block;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
std::mutex event_mutex;
std::set<const void*>& events() {
    static auto* s = new std::set<const void*>;
    return *s;
}
std::atomic<long> n_live_events{0};

cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

bool valid_event(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(event_mutex);
    return events().count(e) != 0;
}

}  // namespace

void syncthreads(const char* site) {
    if (!current_executor) fail(std::string("__syncthreads called outside a kernel (") + site + ")");
    current_executor->syncthreads(site);
}

unsigned ballot_sync(unsigned mask, bool predicate, const char* site) {
    if (!current_executor) fail(std::string("__ballot_sync called outside a kernel (") + site + ")");
    return current_executor->ballot_sync(mask, predicate, site);
}

void launch(dim3 grid, dim3 block, std::size_t dynamic_shared_bytes, cudaStream_t, KernelBody body) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    const bool valid = threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 && grid.x >= 1 &&
                       grid.x <= 0x7fffffffu && grid.y >= 1 && grid.y <= 65535 && grid.z >= 1 && grid.z <= 65535 &&
                       dynamic_shared_bytes <= 48 * 1024;
    if (!valid) {
        record(cudaErrorInvalidConfiguration);
        return;
    }
    const Config config = config_from_environment();
    std::lock_guard<std::mutex> lock(launch_mutex());
    std::mt19937_64 rng(config.seed);
    const unsigned long long n_blocks = 1ull * grid.x * grid.y * grid.z;
    if (n_blocks > 0xffffffffull) fail("grid too large for the emulation");
    const std::vector<unsigned> blocks = visiting_order(static_cast<unsigned>(n_blocks), config.order, rng);
    const uint3 saved_thread = threadIdx, saved_block = blockIdx;
    const dim3 saved_block_dim = blockDim, saved_grid = gridDim;
    if (config.executor == ExecutorKind::threads) {
        run_threads(body, grid, block, blocks);
    } else {
        gridDim = grid;
        blockDim = block;
        FiberBlock& fb = fiber_block();
        for (unsigned b : blocks) {
            blockIdx = unravel(b, grid);
            fb.run(body, static_cast<unsigned>(threads), config.order, rng);
        }
    }
    threadIdx = saved_thread;
    blockIdx = saved_block;
    blockDim = saved_block_dim;
    gridDim = saved_grid;
}

long live_events() { return n_live_events.load(); }

}  // namespace cupatch_emu

// ---- runtime API -----------------------------------------------------------------------
using cupatch_emu::record;

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unrecognized error code";
}

cudaError_t cudaGetLastError() {
    const cudaError_t e = cupatch_emu::last_error;
    cupatch_emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return cupatch_emu::last_error; }

// Emulated devices: 1, or CUPATCH_EMULATE_DEVICES (0 makes the device query fail as on a
// machine without a GPU; more than 1 gives devices that share the one host memory).
static int emulated_devices() {
    const char* e = std::getenv("CUPATCH_EMULATE_DEVICES");
    if (!e || !*e) return 1;
    char* end = nullptr;
    const long n = std::strtol(e, &end, 10);
    if (*end || n < 0 || n > 16) cupatch_emu::fail(std::string("CUPATCH_EMULATE_DEVICES must be an integer 0..16, got '") + e + "'");
    return static_cast<int>(n);
}

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return record(cudaErrorInvalidValue);
    const int n = emulated_devices();
    if (n == 0) return record(cudaErrorNoDevice);
    *count = n;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    if (!version) return record(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (!device) return record(cudaErrorInvalidValue);
    *device = cupatch_emu::current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= emulated_devices()) return record(cudaErrorInvalidDevice);
    cupatch_emu::current_device = device;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }        // launches are synchronous
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    if (!event || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming))) return record(cudaErrorInvalidValue);
    auto* e = reinterpret_cast<cudaEvent_t>(new char(0));
    {
        std::lock_guard<std::mutex> lock(cupatch_emu::event_mutex);
        cupatch_emu::events().insert(e);
    }
    ++cupatch_emu::n_live_events;
    *event = e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
    return cupatch_emu::valid_event(event) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned flags) {
    if (flags != 0) return record(cudaErrorInvalidValue);
    return cupatch_emu::valid_event(event) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    {
        std::lock_guard<std::mutex> lock(cupatch_emu::event_mutex);
        if (!cupatch_emu::events().erase(event)) return record(cudaErrorInvalidResourceHandle);
    }
    delete reinterpret_cast<char*>(event);
    --cupatch_emu::n_live_events;
    return cudaSuccess;
}
