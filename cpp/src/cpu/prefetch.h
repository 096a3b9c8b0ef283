// SPDX-License-Identifier: BSD-3-Clause
// Software prefetch for the CPU kernels' strided rows (patch and tile rows of a large image
// are one page or more apart, which the hardware prefetchers do not follow).
#pragma once

#include <cstdint>

namespace cupatch {

// Prefetch the cache line holding p (any address: a prefetch never faults). GCC treats
// __builtin_prefetch as free of side effects and deletes loops made only of it at -O1 and
// above (dead-code elimination with C++'s forward-progress rule), so on x86-64 and AArch64
// the hint is a volatile instruction.
inline void prefetch_line(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__aarch64__)
    asm volatile("prfm pldl1keep, %0" : : "Q"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p);
#endif
}

// Prefetch the lines of [p, p + bytes), at most max_lines of them.
inline void prefetch_run(const void* p, std::int64_t bytes, std::int64_t max_lines = 32) {
    if (bytes <= 0) return;
    const char* first = static_cast<const char*>(p);
    const char* last = first + bytes - 1;
    for (std::int64_t line = 0; first + line * 64 <= last && line < max_lines; ++line) prefetch_line(first + line * 64);
    prefetch_line(last);
}

}  // namespace cupatch
