// SPDX-License-Identifier: BSD-3-Clause
#include "parallel.h"

#include <atomic>
#include <cstdlib>

namespace cupatch {

namespace {
std::atomic<int> g_threads{0};  // 0 = not set: CUPATCH_NUM_THREADS or all hardware threads

int default_threads() {
    if (const char* env = std::getenv("CUPATCH_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n > 0) return n;
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

}  // namespace cupatch
