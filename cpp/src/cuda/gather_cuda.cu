// SPDX-License-Identifier: BSD-3-Clause
// CUDA gather: one launch per batch. Output rows are assigned to groups of lanes (a whole
// warp for rows of >= 32 elements, several rows per warp for shorter ones), so stores are
// coalesced along X; the row -> source mapping is gather_row() from gather.h, shared with
// the CPU backend. gather_row() clips every read to the source, so no index in the spec
// table can make a thread read or write out of bounds.
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "cupatch/gather.h"

namespace cupatch {

namespace {

template <class T, class O>
__global__ void __launch_bounds__(kThreadsPerBlock) gather_kernel(GatherArgs a, index_t n_rows, int shift) {
    const index_t width = a.patch[2];
    const int lane = static_cast<int>(threadIdx.x & 31u);
    const index_t group = index_t(1) << shift;
    const index_t rows_per_warp = index_t(32) >> shift;
    const index_t sub = lane >> shift;
    const index_t x0 = lane & (group - 1);
    const index_t warp = (static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const index_t n_warps = (static_cast<index_t>(gridDim.x) * blockDim.x) >> 5;
    O* out = static_cast<O*>(a.out);
    for (index_t row = warp * rows_per_warp + sub; row < n_rows; row += n_warps * rows_per_warp) {
        const GatherRow r = gather_row(a, row);
        O* dst = out + row * width;
#pragma unroll 4
        for (index_t qx = x0; qx < width; qx += group) {
            O v;
            from_float(gather_value<T>(r, qx), v);
            dst[qx] = v;
        }
    }
}

}  // namespace

void gather_cuda(const GatherArgs& a, std::uintptr_t stream) {
    const index_t n_rows = gather_row_count(a);
    if (n_rows <= 0) return;
    const int shift = lanes_per_row_shift(a.patch[2]);
    const unsigned blocks = row_blocks(n_rows, shift);
    const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    dispatch_dtype(a.source_dtype, [&](auto source_tag) {
        using T = decltype(source_tag);
        dispatch_output_dtype(a.out_dtype, [&](auto out_tag) {
            using O = decltype(out_tag);
            gather_kernel<T, O><<<blocks, kThreadsPerBlock, 0, s>>>(a, n_rows, shift);
        });
    });
    check_launch("gather_patches kernel launch");
}

}  // namespace cupatch
