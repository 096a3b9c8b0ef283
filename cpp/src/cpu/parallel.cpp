// SPDX-License-Identifier: BSD-3-Clause
#include "parallel.h"

#include "openmp_runtime.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace cupatch {

namespace {
std::atomic<int> g_threads{0};  // 0 = not set: CUPATCH_NUM_THREADS or all hardware threads
std::atomic<int> g_fail_thread_start_after{-1};  // testing aid, < 0 = off

constexpr long kMaxThreads = 4096;  // more would only fail to start (and then run inline)

// CUPATCH_NUM_THREADS as a thread count, 0 where it is unset or not a positive number.
int threads_from_env() {
    if (const char* env = std::getenv("CUPATCH_NUM_THREADS")) {
        const long n = std::strtol(env, nullptr, 10);  // saturates instead of overflowing like atoi
        if (n > 0) return static_cast<int>(n < kMaxThreads ? n : kMaxThreads);
    }
    return 0;
}

int default_threads() {
    if (const int n = threads_from_env()) return n;
    // Asked once: hardware_concurrency() reads /sys on every call (a system call per kernel).
    static const unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

// One parallel_for call. Shared with the workers, which may still hold it (and only touch
// its counters, finding no chunk left) after the caller has returned.
struct Job {
    const std::function<void(std::int64_t)>* chunk = nullptr;  // valid while chunks remain
    std::int64_t n_chunks = 0;
    int max_workers = 0;  // workers with index <= max_workers take part
    std::atomic<std::int64_t> next{0};
    std::atomic<std::int64_t> finished{0};
    std::vector<std::exception_ptr> errors;
    std::mutex m;
    std::condition_variable all_done;

    // Claim and run chunks until none is left; returns when this thread has no more to do.
    void work() {
        for (;;) {
            const std::int64_t k = next.fetch_add(1, std::memory_order_relaxed);
            if (k >= n_chunks) return;
            try {
                (*chunk)(k);
            } catch (...) {
                errors[static_cast<std::size_t>(k)] = std::current_exception();
            }
            if (finished.fetch_add(1, std::memory_order_acq_rel) + 1 == n_chunks) {
                std::lock_guard<std::mutex> lock(m);
                all_done.notify_all();
            }
        }
    }
};

class Pool {
public:
    // Runs the job with up to n_threads - 1 workers; false when the pool is busy (the
    // caller then runs the chunks itself).
    bool run(const std::shared_ptr<Job>& job, int n_threads) {
        std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        grow(n_threads - 1);
        {
            std::lock_guard<std::mutex> lock(m_);
            job->max_workers = n_threads - 1;
            current_ = job;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        job->work();
        {
            std::unique_lock<std::mutex> lock(job->m);
            job->all_done.wait(lock, [&] { return job->finished.load(std::memory_order_acquire) == job->n_chunks; });
        }
        std::lock_guard<std::mutex> lock(m_);
        current_.reset();
        return true;
    }

    void stop_all() {
        std::lock_guard<std::mutex> busy(run_mutex_);
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
        std::lock_guard<std::mutex> lock(m_);
        stop_ = false;
    }

private:
    void grow(int wanted) {
        // Called with run_mutex_ held. A refused start leaves the pool smaller; the caller
        // claims the chunks no worker takes.
        while (static_cast<int>(workers_.size()) < wanted) {
            const std::int64_t index = static_cast<std::int64_t>(workers_.size()) + 1;
            try {
                workers_.push_back(start_worker_thread(index, [this, index] { loop(index); }));
            } catch (...) {  // std::system_error (no more threads) or std::bad_alloc
                return;
            }
        }
    }

    void loop(std::int64_t index) {
        std::uint64_t seen = 0;
        {
            std::lock_guard<std::mutex> lock(m_);
            seen = generation_;  // a job that started before this worker existed is not joined late
        }
        for (;;) {
            std::shared_ptr<Job> job;
            spin_for_next_job(seen);
            {
                std::unique_lock<std::mutex> lock(m_);
                wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                job = current_;
            }
            if (job && index <= job->max_workers) job->work();
        }
    }

    // Kernels often come back to back (a batch loop, the gather and stitch of tiled
    // inference): a worker that has just finished watches for the next job for a short
    // while before it sleeps. Waking a sleeping thread costs tens of microseconds on a
    // virtual machine (its CPU has to be rescheduled), a large part of a sub-millisecond job.
    void spin_for_next_job(std::uint64_t seen) const {
        const auto until = std::chrono::steady_clock::now() + kSpin;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
            for (int i = 0; i < 64; ++i) cpu_relax();
            if (std::chrono::steady_clock::now() >= until) return;
        }
    }

    static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }

    static constexpr std::chrono::microseconds kSpin{100};

    std::mutex run_mutex_;  // one job at a time
    std::mutex m_;
    std::condition_variable wake_;
    std::vector<std::thread> workers_;
    std::shared_ptr<Job> current_;
    std::atomic<std::uint64_t> generation_{0};  // written under m_; read without it while spinning
    std::atomic<bool> stop_{false};  // written under m_; read without it while spinning
};

// Never destroyed: workers may be blocked in it at process exit, and a forked child leaks
// the parent's (whose threads do not exist there) instead of joining it.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

void drop_pool_in_child() {
    g_pool.store(nullptr, std::memory_order_relaxed);
    forget_openmp_runtime_in_child();
}

Pool& pool() {
    std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, drop_pool_in_child); });
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (!p) {
        auto* fresh = new Pool();
        if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
            p = fresh;
        } else {
            delete fresh;  // another thread installed one first (p now points to it)
        }
    }
    return *p;
}
}  // namespace

int cpu_threads() {
    const int n = g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : default_threads();
}

bool cpu_threads_chosen() { return g_threads.load(std::memory_order_relaxed) > 0 || threads_from_env() > 0; }

void set_cpu_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

void set_thread_start_failure_for_testing(int n) { g_fail_thread_start_after.store(n < 0 ? -1 : n, std::memory_order_relaxed); }

std::thread start_worker_thread(std::int64_t index, std::function<void()> work) {
    const int fail_after = g_fail_thread_start_after.load(std::memory_order_relaxed);
    if (fail_after >= 0 && index > fail_after)  // worker indices start at 1
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "thread start refused (testing)");
    return std::thread(std::move(work));
}

void reset_thread_pool_for_testing() { pool().stop_all(); }

void run_chunks(std::int64_t n_chunks, int n_threads, const std::function<void(std::int64_t)>& chunk,
                ParallelBackend backend) {
    auto job = std::make_shared<Job>();
    job->chunk = &chunk;
    job->n_chunks = n_chunks;
    job->errors.resize(static_cast<std::size_t>(n_chunks));
    Pool& own = pool();  // also installs the fork handler that keeps a child off the runtime
    const OpenMPTeam openmp = backend == ParallelBackend::any ? openmp_team_for(n_threads) : OpenMPTeam{};
    if (openmp.runtime) {
        // Every team thread claims chunks like a pool worker; the region ends when all have
        // returned, and a chunk's exception is caught inside work(), never crossing the runtime.
        openmp.runtime->parallel([](void* j) { static_cast<Job*>(j)->work(); }, job.get(),
                                 static_cast<unsigned>(openmp.threads), 0);
    } else if (!own.run(job, n_threads)) {
        job->work();  // busy (another caller, or nested): inline
    }
    for (auto& e : job->errors)
        if (e) std::rethrow_exception(e);
}

void parallel_for_check(std::int64_t n, int fail_thread_start_after, std::int64_t throw_at, std::int32_t* hits,
                        bool pool_only) {
    struct ResetHook {
        ~ResetHook() {
            set_thread_start_failure_for_testing(-1);
            reset_thread_pool_for_testing();  // the next call starts its workers normally
        }
    } reset_hook;
    set_thread_start_failure_for_testing(fail_thread_start_after);
    reset_thread_pool_for_testing();  // workers are started anew, under the hook
    std::fill(hits, hits + n, 0);
    parallel_for(n, std::int64_t(1) << 15, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) ++hits[i];
        if (throw_at >= begin && throw_at < end)
            throw std::out_of_range("item " + std::to_string(throw_at) + " failed (testing)");
    }, pool_only ? ParallelBackend::pool : ParallelBackend::any);
}

}  // namespace cupatch
