// SPDX-License-Identifier: BSD-3-Clause
// CUDA gather kernel, included by one translation unit per output dtype
// (gather_cuda_<dtype>.cu), so that the 8 x 3 instantiations compile in parallel;
// gather_cuda.cu dispatches to them. One launch per batch. Output rows are assigned to
// groups of lanes (a whole warp for rows of >= 32 elements, several rows per warp for
// shorter ones), so stores are coalesced along X; the row -> source mapping is
// gather_row() from gather.h, shared with the CPU backend. gather_row() clips every read
// to the source, so no index in the spec table can make a thread read or write out of
// bounds.
#pragma once

#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "cupatch/gather.h"

namespace cupatch {

namespace {

// A mapped row in the compact form the inner loop needs (few registers per row).
template <class T, class O>
struct DeviceRow {
    const T* src;  // source element of qx = lo (a valid address whenever lo < hi)
    index_t step;
    int lo, hi;  // in-image range of qx; rows are far shorter than 2**31 elements
    float scale, shift;
    O* dst;
};

// Each lane group handles kRowsPerLane rows at once and issues their loads before their
// stores, so every thread keeps several independent memory requests in flight (the
// compiler cannot hoist loads above stores itself: source and output may alias).
template <class T, class O>
__global__ void __launch_bounds__(kThreadsPerBlock, 3) gather_kernel(GatherArgs a, index_t n_rows, int shift) {
    const index_t width = a.patch[2];
    const RowLanes L(shift);
    O* out = static_cast<O*>(a.out);
    const bool narrow = n_rows < (index_t(1) << 31);
    for (index_t first = L.warp * L.rows_per_warp; first < n_rows; first += L.n_warps * L.rows_per_warp) {
        DeviceRow<T, O> rows[kRowsPerLane];
#pragma unroll
        for (int j = 0; j < kRowsPerLane; ++j) {
            const index_t row = first + L.sub + j * L.rows_per_pass;
            DeviceRow<T, O>& d = rows[j];
            d.dst = nullptr;
            d.src = nullptr;
            d.step = 0;
            d.lo = d.hi = 0;
            d.scale = d.shift = 0.0f;
            if (row >= n_rows) continue;
            // 32-bit division is several times cheaper than 64-bit
            const RowIndex index = narrow ? unravel_row<std::uint32_t>(row, a.n_channels, a.patch[0], a.patch[1])
                                          : gather_row_index(a, row);
            const GatherRow r = gather_row_at(a, index);
            d.dst = out + row * width;
            d.lo = static_cast<int>(r.lo);
            d.hi = static_cast<int>(r.hi);
            d.step = r.step;
            d.src = r.hi > r.lo ? static_cast<const T*>(r.data) + (r.base + r.lo * r.step) : nullptr;
            d.scale = r.scale;
            d.shift = r.shift;
        }
        for (int qx = L.x0; qx < width; qx += L.group) {
            float v[kRowsPerLane];
#pragma unroll
            for (int j = 0; j < kRowsPerLane; ++j) {
                const DeviceRow<T, O>& d = rows[j];
                const float raw = (qx >= d.lo && qx < d.hi) ? to_float(d.src[(qx - d.lo) * d.step]) : 0.0f;
                v[j] = gather_affine(raw, d.scale, d.shift);
            }
#pragma unroll
            for (int j = 0; j < kRowsPerLane; ++j) {
                if (!rows[j].dst) continue;
                O o;
                from_float(v[j], o);
                rows[j].dst[qx] = o;
            }
        }
    }
}

// The launch for output type O, every source dtype; instantiated by gather_cuda_<O>.cu.
template <class O>
void gather_cuda_to(const GatherArgs& a, std::uintptr_t stream) {
    const index_t n_rows = gather_row_count(a);
    if (n_rows <= 0) return;
    const int shift = lanes_per_row_shift(a.patch[2]);
    const unsigned blocks = row_blocks(n_rows, shift, kRowsPerLane);
    const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    dispatch_dtype(a.source_dtype, [&](auto source_tag) {
        using T = decltype(source_tag);
        launch_kernel("gather_patches kernel launch", gather_kernel<T, O>, blocks, kThreadsPerBlock, s, a, n_rows, shift);
    });
}

}  // namespace

// One overload per output dtype, each defined in its own translation unit.
void gather_cuda_for(float, const GatherArgs& a, std::uintptr_t stream);
void gather_cuda_for(float16_t, const GatherArgs& a, std::uintptr_t stream);
void gather_cuda_for(bfloat16_t, const GatherArgs& a, std::uintptr_t stream);

}  // namespace cupatch
