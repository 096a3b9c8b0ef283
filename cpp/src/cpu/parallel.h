// SPDX-License-Identifier: BSD-3-Clause
// Parallel loop of the CPU kernels over a persistent, fork-safe worker pool.
//
// Work is cut into more chunks than threads and claimed from an atomic counter; the calling
// thread claims chunks too and returns as soon as every chunk has *finished*, never waiting
// for a worker to wake up or exit. Next to torch (whose OpenMP threads keep spinning on
// the cores for a while after each operator) or other busy processes, a worker may not be
// scheduled for milliseconds: the caller then simply runs its chunks. Starting threads per
// call and joining them, as before, made every call wait for the slowest thread start,
// 3-10x slower beside a torch model on two cores.
//
// Next to an OpenMP runtime that something else loaded (torch), calls from the main thread
// run as a parallel region of that runtime instead, on its threads, as many as it has when
// the kernels' thread count is the hardware default (openmp_runtime.h).
//
// Fork safety: a forked child (DataLoader workers) inherits no pool threads; a
// pthread_atfork handler drops the parent's pool in the child, which starts its own on
// first use. A call made while the pool is busy (another thread, or a nested call) runs
// inline on its own thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <thread>

#include "cupatch/threads.h"

namespace cupatch {

// Testing aid: when n >= 0, worker thread starts with index > n (indices start at 1) throw
// std::system_error as if the system had run out of threads; n < 0 (the default) restores
// normal behaviour.
void set_thread_start_failure_for_testing(int n);
// Start one worker thread (honours the testing aid above).
std::thread start_worker_thread(std::int64_t index, std::function<void()> work);
// Testing aid: stop and join the pool's workers (the next parallel_for starts them anew).
void reset_thread_pool_for_testing();

// Where run_chunks runs: a loaded OpenMP runtime's threads where openmp_team_for allows
// it, else the pool (`any`); always the pool (`pool`, for testing the pool itself).
enum class ParallelBackend { any, pool };

// Run chunk(k) for k in [0, n_chunks) on up to `n_threads` threads (the caller included).
// Exceptions: the one of the lowest failing chunk is rethrown after every chunk finished.
void run_chunks(std::int64_t n_chunks, int n_threads, const std::function<void(std::int64_t)>& chunk,
                ParallelBackend backend = ParallelBackend::any);

// Run body(begin, end) over [0, n) split into contiguous chunks. `cost_per_item` is a rough
// element count per item; small jobs run on the caller thread. Items are independent, so
// results do not depend on how the range is cut.
//
// Exception safety: an exception thrown by `body` is rethrown here (the lowest chunk's)
// after every chunk has finished. When worker threads cannot be started, the calling
// thread runs all chunks.
template <class Body>
void parallel_for(std::int64_t n, std::int64_t cost_per_item, Body&& body,
                  ParallelBackend backend = ParallelBackend::any) {
    if (n <= 0) return;
    constexpr std::int64_t kMinWorkPerChunk = 1 << 14;
    constexpr std::int64_t kChunksPerThread = 8;  // balance, and slack for a late worker
    const std::int64_t total = n * std::max<std::int64_t>(cost_per_item, 1);
    const std::int64_t max_chunks = std::max<std::int64_t>(total / kMinWorkPerChunk, 1);
    const int n_threads = static_cast<int>(std::min<std::int64_t>({cpu_threads(), n, max_chunks}));
    if (n_threads <= 1) {
        body(std::int64_t(0), n);
        return;
    }
    const std::int64_t n_chunks = std::min<std::int64_t>({n, max_chunks, n_threads * kChunksPerThread});
    const std::int64_t per = n / n_chunks, extra = n % n_chunks;  // first `extra` chunks get one more
    run_chunks(n_chunks, n_threads, [&](std::int64_t k) {
        const std::int64_t begin = k * per + std::min(k, extra);
        body(begin, begin + per + (k < extra ? 1 : 0));
    }, backend);
}

}  // namespace cupatch
