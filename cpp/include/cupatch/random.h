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

// floor(a * b / 2**64): the high word of the 128-bit product, from 32-bit halves (the same
// steps as cupatch._random._mulhi64; no product or sum here exceeds 2**64).
// One portable body for host and device (equal to CUDA's __umul64hi).
CUPATCH_HD std::uint64_t mulhi64(std::uint64_t a, std::uint64_t b) {
    const std::uint64_t ah = a >> 32, al = a & 0xFFFFFFFFull, bh = b >> 32, bl = b & 0xFFFFFFFFull;
    const std::uint64_t hl = ah * bl, lh = al * bh, ll = al * bl;
    const std::uint64_t carry = ((hl & 0xFFFFFFFFull) + (lh & 0xFFFFFFFFull) + (ll >> 32)) >> 32;
    return ah * bh + (hl >> 32) + (lh >> 32) + carry;
}

// Integer in [0, n) for 1 <= n <= 2**62: the top 32 bits of h scaled for n < 2**32, all 64
// bits (a 128-bit product) above, so every value of a range beyond 2**32 can be drawn.
CUPATCH_HD std::uint64_t uniform_int(std::uint64_t h, std::uint64_t n) {
    return n < (1ull << 32) ? ((h >> 32) * n) >> 32 : mulhi64(h, n);
}

// Double in [0, 1).
CUPATCH_HD double uniform01(std::uint64_t h) { return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace cupatch
