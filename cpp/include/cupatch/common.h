// SPDX-License-Identifier: BSD-3-Clause
// Shared definitions for the host (C++) and device (CUDA) halves of cupatch.
//
// Every per-element formula lives in CUPATCH_HD inline functions so the CPU loops and the
// CUDA kernels evaluate literally the same code; CPU tests therefore vouch for the maths
// the GPU runs.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define CUPATCH_HD __host__ __device__ __forceinline__
#else
#define CUPATCH_HD inline
#endif

namespace cupatch {

using index_t = std::int64_t;

// Spatial axes are always handled as (Z, Y, X); 2-D data has Z = 1 and a zero Z stride.
constexpr int kMaxSpatial = 3;

// float32 multiply and add, each rounded to nearest even, never contracted into an FMA.
// The host side is compiled with -ffp-contract=off (see CMakeLists.txt), the device side
// uses the explicitly rounded intrinsics, so both give the same bits.
CUPATCH_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

CUPATCH_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

// float32 division rounded to nearest even (IEEE; CUDA's `/` is too unless built with
// fast-math flags, which cupatch never uses).
CUPATCH_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

CUPATCH_HD index_t min_i(index_t a, index_t b) { return a < b ? a : b; }
CUPATCH_HD index_t max_i(index_t a, index_t b) { return a > b ? a : b; }

// Spec-table coordinates and sizes are clamped to [-kCoordLimit, kCoordLimit] when loaded,
// so the few additions the kernels do with them (plus extents and origins, which the
// bindings keep below kCoordLimit) can never overflow int64, whatever the table holds.
// Array extents are far below the limit, so a clamped read window still lies wholly
// outside every image exactly when the original one did.
constexpr index_t kCoordLimit = index_t(1) << 60;

CUPATCH_HD index_t clamp_coord(index_t v) { return min_i(max_i(v, -kCoordLimit), kCoordLimit); }

// A row of a C-ordered (items, channels, planes, lines, width) array: item b (patch or
// tile), channel k, plane qz, line qy.
struct RowIndex {
    index_t b, k, qz, qy;
};

// Linear row index -> its position, computed in the integer type I: the CUDA kernels use
// std::uint32_t when the row count fits, as 32-bit division is several times cheaper.
template <class I = index_t>
CUPATCH_HD RowIndex unravel_row(index_t row, index_t channels, index_t planes, index_t lines) {
    I rest = static_cast<I>(row);
    RowIndex i;
    i.qy = static_cast<index_t>(rest % static_cast<I>(lines));
    rest /= static_cast<I>(lines);
    i.qz = static_cast<index_t>(rest % static_cast<I>(planes));
    rest /= static_cast<I>(planes);
    i.k = static_cast<index_t>(rest % static_cast<I>(channels));
    i.b = static_cast<index_t>(rest / static_cast<I>(channels));
    return i;
}

}  // namespace cupatch
