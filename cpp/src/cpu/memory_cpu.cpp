// SPDX-License-Identifier: BSD-3-Clause
#include "cupatch/memory.h"

#include "parallel.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#endif

namespace cupatch {

void prefault_for_writing(void* data, std::int64_t nbytes) {
#if defined(__linux__)
    if (!data || nbytes <= 0) return;
    const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) / page * page;
    const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(data) + static_cast<std::uintptr_t>(nbytes)) / page * page;
    if (end <= begin) return;
    constexpr std::uintptr_t kBlock = std::uintptr_t(2) << 20;  // a huge page: blocks split evenly across cores
    const std::int64_t n_blocks = static_cast<std::int64_t>((end - begin + kBlock - 1) / kBlock);
    parallel_for(n_blocks, std::int64_t(1) << 16, [&](std::int64_t first, std::int64_t last) {
        const std::uintptr_t lo = begin + static_cast<std::uintptr_t>(first) * kBlock;
        const std::uintptr_t hi = std::min<std::uintptr_t>(end, begin + static_cast<std::uintptr_t>(last) * kBlock);
        // An error (EINVAL before Linux 5.14, ENOMEM) only means the pages fault later.
        (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE);
    });
#else
    (void)data;
    (void)nbytes;
#endif
}

}  // namespace cupatch
