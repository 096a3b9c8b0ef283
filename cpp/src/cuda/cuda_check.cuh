// SPDX-License-Identifier: BSD-3-Clause
// Turning CUDA error codes into C++ exceptions (never exit(): we run inside Python).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "cupatch/errors.h"

namespace cupatch {

inline void check_cuda(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
        throw CudaError(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
    }
}

// Call right after a kernel launch: reports configuration and launch errors.
inline void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

constexpr int kThreadsPerBlock = 256;
constexpr int kRowsPerLane = 4;  // rows each lane group works on at once in the row kernels

// log2 of the lanes that share one row of `width` elements (a power of two <= 32), so
// short rows are packed several to a warp and long rows use the whole warp.
inline int lanes_per_row_shift(std::int64_t width) {
    int shift = 0;
    while (shift < 5 && (std::int64_t(1) << shift) < width) ++shift;
    return shift;
}

// Blocks for `n_rows` rows at (32 >> shift) * rows_per_lane rows per warp; kernels
// grid-stride beyond the cap.
inline unsigned row_blocks(std::int64_t n_rows, int shift, int rows_per_lane) {
    const std::int64_t rows_per_block = (kThreadsPerBlock / 32) * (32 >> shift) * rows_per_lane;
    std::int64_t blocks = (n_rows + rows_per_block - 1) / rows_per_block;
    if (blocks > (std::int64_t(1) << 20)) blocks = std::int64_t(1) << 20;
    return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace cupatch
