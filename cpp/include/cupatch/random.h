// SPDX-License-Identifier: BSD-3-Clause
// Counter-based randomness (docs/contracts.md); mirrors python/cupatch/_random.py bit for bit.
// All arithmetic is on uint64 and wraps modulo 2**64.
#pragma once

#include <cstdint>

#include "cupatch/common.h"

namespace cupatch {

CUPATCH_HD std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

CUPATCH_HD std::uint64_t hash4(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index, std::uint64_t stream) {
    return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index) ^ stream);
}

// Integer in [0, n) for 1 <= n < 2**32.
CUPATCH_HD std::uint64_t uniform_int(std::uint64_t h, std::uint64_t n) { return ((h >> 32) * n) >> 32; }

// Double in [0, 1).
CUPATCH_HD double uniform01(std::uint64_t h) { return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace cupatch
