// SPDX-License-Identifier: BSD-3-Clause
// Thread controls of the CPU kernels, as the bindings see them (the parallel loop itself is
// private to cpp/src/cpu/parallel.h).
#pragma once

#include <cstdint>
#include <string>

namespace cupatch {

// Number of worker threads the CPU kernels use (set_cpu_threads(0) = all hardware threads).
int cpu_threads();
void set_cpu_threads(int n);
// True when the count was chosen (set_cpu_threads(n > 0) or CUPATCH_NUM_THREADS), false for
// the hardware default.
bool cpu_threads_chosen();

// Testing aid: run the CPU parallel loop over n items, refusing worker thread starts after
// the first `fail_thread_start_after` (< 0: never) and throwing std::out_of_range from the
// chunk that holds item `throw_at` (< 0: never). hits: (n,) int32, incremented once per
// item run. Thread-start refusal is reset before returning, also on error. pool_only: run
// on the kernels' own pool even where a loaded OpenMP runtime would be borrowed.
void parallel_for_check(std::int64_t n, int fail_thread_start_after, std::int64_t throw_at, std::int32_t* hits,
                        bool pool_only);

// What the CPU kernels' parallel loop runs on now, called from this thread: "openmp <path
// of the runtime>, <n> threads" (a loaded OpenMP runtime's threads, see
// cpp/src/cpu/openmp_runtime.h) or "pool" (the kernels' own worker threads).
std::string cpu_parallel_backend();

}  // namespace cupatch
