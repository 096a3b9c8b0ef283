// SPDX-License-Identifier: BSD-3-Clause
// The process's OpenMP runtime, borrowed for the CPU kernels' parallel loop.
//
// Next to a torch model (whose intra-op threads are OpenMP threads) the kernels' own pool
// competes for the cores with torch's worker threads, which keep spinning for a while after
// every operator: on two cores the kernels then ran 1.5-2x slower than on their own. When an
// OpenMP runtime is loaded, the kernels instead run as one more parallel region of it, on
// the very threads that are spinning, and torch's next operator finds them spinning in turn.
//
// Only the GOMP entry points are used (GCC's libgomp, and the GOMP compatibility layer of
// LLVM's libomp and Intel's libiomp5); cupatch does not link any OpenMP runtime, it looks for
// one that something else (torch) loaded. It is borrowed only where that is safe and useful:
// from the process's main thread (another thread would get a new team of its own, spinning
// beside torch's), outside any parallel region, never in a forked child (libgomp's threads
// do not survive fork), and for at most the runtime's own thread count (omp_get_max_threads,
// which torch.set_num_threads sets), so that no thread has to be started. CUPATCH_OPENMP=0
// turns it off.
#pragma once

#include <string>

namespace cupatch {

struct OpenMPRuntime {
    // GOMP_parallel(fn, data, num_threads, flags): fn(data) on a team of num_threads
    // threads (the caller is one of them); returns when every team thread has returned.
    void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) = nullptr;
    int (*max_threads)() = nullptr;  // omp_get_max_threads
    int (*in_parallel)() = nullptr;  // omp_in_parallel
    std::string path;                // the shared object the entry points come from
};

// Where a parallel loop of `n_threads` threads on the calling thread may run now: a loaded
// runtime and its team size, or runtime == nullptr (use the kernels' own pool). The team is
// n_threads, or the runtime's own thread count where that is smaller and the kernels'
// count is the hardware default (cpu_threads_chosen() false): the kernels then follow
// torch's thread count; a count the user chose that the runtime's team cannot hold without
// starting threads keeps the pool.
struct OpenMPTeam {
    const OpenMPRuntime* runtime = nullptr;
    int threads = 0;
};
OpenMPTeam openmp_team_for(int n_threads);

// The kernels' parallel loop in a forked child never borrows the runtime (called from the
// pool's pthread_atfork child handler).
void forget_openmp_runtime_in_child();

}  // namespace cupatch
