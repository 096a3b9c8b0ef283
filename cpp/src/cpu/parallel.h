// SPDX-License-Identifier: BSD-3-Clause
// Minimal std::thread parallel loop for the CPU kernels.
//
// Threads are started per call instead of kept in a pool: DataLoader workers fork, and a
// forked child inherits no pool threads, so a persistent pool would deadlock there.
// Starting a couple of threads costs tens of microseconds, negligible next to the work we
// parallelise (small jobs run inline).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "cupatch/threads.h"

namespace cupatch {

// Testing aid: when n >= 0, the (n + 1)-th and later worker thread starts of every
// parallel_for throw std::system_error as if the system had run out of threads; n < 0
// (the default) restores normal behaviour.
void set_thread_start_failure_for_testing(int n);
// Start one worker thread (honours the testing aid above).
std::thread start_worker_thread(std::int64_t index, std::function<void()> work);

// Run body(begin, end) over [0, n) split into contiguous chunks, one per thread.
// `cost_per_item` is a rough element count per item; small jobs run on the caller thread.
//
// Exception safety: an exception thrown by `body` on any thread is rethrown here (the first
// chunk's in chunk order) after every thread has been joined. When a worker thread cannot
// be started, its chunk and all later ones run on the calling thread instead, so a started
// std::thread is never destroyed unjoined (which would call std::terminate).
template <class Body>
void parallel_for(std::int64_t n, std::int64_t cost_per_item, Body&& body) {
    if (n <= 0) return;
    constexpr std::int64_t kMinWorkPerThread = 1 << 15;
    const std::int64_t total = n * std::max<std::int64_t>(cost_per_item, 1);
    std::int64_t n_threads = std::min<std::int64_t>(cpu_threads(), n);
    n_threads = std::min<std::int64_t>(n_threads, std::max<std::int64_t>(total / kMinWorkPerThread, 1));
    if (n_threads <= 1) {
        body(std::int64_t(0), n);
        return;
    }
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n_threads));
    const std::int64_t chunk = (n + n_threads - 1) / n_threads;
    auto run = [&](std::int64_t t) {
        const std::int64_t begin = t * chunk, end = std::min(n, begin + chunk);
        try {
            if (begin < end) body(begin, end);
        } catch (...) {
            errors[static_cast<std::size_t>(t)] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    std::int64_t started = 1;  // chunk 0 always runs on the calling thread
    try {
        workers.reserve(static_cast<std::size_t>(n_threads - 1));
        for (; started < n_threads; ++started) {
            const std::int64_t t = started;
            // emplace_back cannot reallocate (reserved), so a failed start leaves `workers` intact.
            workers.emplace_back(start_worker_thread(t, [&run, t]() { run(t); }));
        }
    } catch (...) {
        // No more threads (std::system_error) or no memory: the remaining chunks run below.
    }
    run(0);
    for (std::int64_t t = started; t < n_threads; ++t) run(t);
    for (auto& w : workers) w.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace cupatch
