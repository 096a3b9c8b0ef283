// SPDX-License-Identifier: BSD-3-Clause
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace cupatch {

namespace {
std::atomic<int> g_threads{0};  // 0 = not set: CUPATCH_NUM_THREADS or all hardware threads
std::atomic<int> g_fail_thread_start_after{-1};  // testing aid, < 0 = off

constexpr long kMaxThreads = 4096;  // more would only fail to start (and then run inline)

int default_threads() {
    if (const char* env = std::getenv("CUPATCH_NUM_THREADS")) {
        const long n = std::strtol(env, nullptr, 10);  // saturates instead of overflowing like atoi
        if (n > 0) return static_cast<int>(n < kMaxThreads ? n : kMaxThreads);
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}
}  // namespace

int cpu_threads() {
    const int n = g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : default_threads();
}

void set_cpu_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

void set_thread_start_failure_for_testing(int n) { g_fail_thread_start_after.store(n < 0 ? -1 : n, std::memory_order_relaxed); }

std::thread start_worker_thread(std::int64_t index, std::function<void()> work) {
    const int fail_after = g_fail_thread_start_after.load(std::memory_order_relaxed);
    if (fail_after >= 0 && index > fail_after)  // worker indices start at 1
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "thread start refused (testing)");
    return std::thread(std::move(work));
}

void parallel_for_check(std::int64_t n, int fail_thread_start_after, std::int64_t throw_at, std::int32_t* hits) {
    struct ResetHook {
        ~ResetHook() { set_thread_start_failure_for_testing(-1); }
    } reset_hook;
    set_thread_start_failure_for_testing(fail_thread_start_after);
    std::fill(hits, hits + n, 0);
    parallel_for(n, std::int64_t(1) << 15, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) ++hits[i];
        if (throw_at >= begin && throw_at < end)
            throw std::out_of_range("item " + std::to_string(throw_at) + " failed (testing)");
    });
}

}  // namespace cupatch
