// SPDX-License-Identifier: BSD-3-Clause
// Turning CUDA error codes into C++ exceptions (never exit(): we run inside Python).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "cupatch/common.h"
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

// The one launch point of every kernel: launch `kernel` on `stream` with a grid of `grid`
// blocks of `block` threads, no dynamic shared memory, then report launch errors as
// CudaError naming `what`. In an emulated build (cpp/emulation) the same kernel body runs on
// the host, every CUDA thread of a block as a fiber, and the call returns when it is done.
template <class... Params, class... Args>
void launch_kernel(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                   const Args&... args) {
#if defined(CUPATCH_CUDA_EMULATED)
    const auto body = [&]() { kernel(Params(args)...); };
    using Body = decltype(body);
    cupatch_emu::launch(grid, block, 0, stream,
                        cupatch_emu::KernelBody{[](const void* closure) { (*static_cast<const Body*>(closure))(); }, &body});
#else
    kernel<<<grid, block, 0, stream>>>(args...);
#endif
    check_launch(what);
}

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

// How one warp of a row kernel shares out rows: groups of (1 << shift) lanes each take a
// row, (32 >> shift) rows per pass, kRowsPerLane passes per warp-sized step, grid-striding.
struct RowLanes {
    int group;              // lanes per row
    int sub;                // this lane's row within a pass
    int x0;                 // this lane's first element within its row
    index_t rows_per_pass;  // rows one warp covers per pass
    index_t rows_per_warp;  // rows one warp covers per step
    index_t warp;           // global warp index
    index_t n_warps;        // warps in the grid

    __device__ explicit RowLanes(int shift) {
        const int lane = static_cast<int>(threadIdx.x & 31u);
        group = 1 << shift;
        sub = lane >> shift;
        x0 = lane & (group - 1);
        rows_per_pass = index_t(32) >> shift;
        rows_per_warp = rows_per_pass * kRowsPerLane;
        warp = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
        n_warps = (static_cast<index_t>(gridDim.x) * blockDim.x) >> 5;
    }
};

}  // namespace cupatch
