// SPDX-License-Identifier: BSD-3-Clause
// CUDA stitching, one launch per batch of tiles.
//
// crop : tile rows are distributed like gather output rows (cuda_check.cuh); crop_row()
//        (crop.h) clips every row to the tile and the output slab.
// blend: block (b, chunk) handles part of tile b's clipped window. The block first collects,
//        in ascending order and without atomics, the batch tiles whose windows intersect
//        tile b into shared memory (warp ballots + a block prefix sum) with their clipped
//        windows; each thread then owns distinct voxels and calls blend_voxel_candidates()
//        with that list. A voxel is written
//        only by the block of its lowest covering tile and, within it, by one thread, so
//        there are no races and the sums are added in the contract's order.
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "cupatch/blend.h"
#include "cupatch/crop.h"

namespace cupatch {

namespace {

constexpr int kBlendListCapacity = 256;  // candidate tiles kept in shared memory per block
constexpr index_t kBlendVoxelsPerBlock = 2048;

// Rows are handled kRowsPerLane at a time, loads before stores (see gather_cuda.cu).
__global__ void __launch_bounds__(kThreadsPerBlock, 4) crop_kernel(StitchArgs a, index_t n_rows, int shift) {
    const RowLanes L(shift);
    const index_t width = a.tile[2];
    const bool narrow = n_rows < (index_t(1) << 31);
    for (index_t first = L.warp * L.rows_per_warp; first < n_rows; first += L.n_warps * L.rows_per_warp) {
        const float* src[kRowsPerLane];
        float* dst[kRowsPerLane];
        int lo[kRowsPerLane], hi[kRowsPerLane];
#pragma unroll
        for (int j = 0; j < kRowsPerLane; ++j) {
            const index_t row = first + L.sub + j * L.rows_per_pass;
            lo[j] = hi[j] = 0;
            src[j] = nullptr;
            dst[j] = nullptr;
            if (row >= n_rows) continue;
            // 32-bit division is several times cheaper than 64-bit
            const RowIndex i = narrow ? unravel_row<std::uint32_t>(row, a.channels, a.tile[0], a.tile[1])
                                      : unravel_row(row, a.channels, a.tile[0], a.tile[1]);
            const CropRow r = crop_row_at(a, i.b, i.k, i.qz, i.qy);
            if (r.hi <= r.lo) continue;
            lo[j] = static_cast<int>(r.lo);
            hi[j] = static_cast<int>(r.hi);
            src[j] = a.tiles + r.src;  // row start inside the tile batch
            dst[j] = r.out + (r.dst + r.lo);  // first element written (a valid address)
        }
        for (int tx = L.x0; tx < width; tx += L.group) {
            float v[kRowsPerLane];
#pragma unroll
            for (int j = 0; j < kRowsPerLane; ++j) v[j] = (tx >= lo[j] && tx < hi[j]) ? src[j][tx] : 0.0f;
#pragma unroll
            for (int j = 0; j < kRowsPerLane; ++j)
                if (tx >= lo[j] && tx < hi[j]) dst[j][tx - lo[j]] = v[j];
        }
    }
}

__global__ void __launch_bounds__(kThreadsPerBlock) blend_kernel(StitchArgs a) {
    __shared__ std::int32_t s_list[kBlendListCapacity];
    __shared__ BlendCandidate s_cand[kBlendListCapacity];
    __shared__ int s_warp_hits[kThreadsPerBlock / 32];
    __shared__ index_t s_count;

    const index_t b = blockIdx.x;
    const int tid = static_cast<int>(threadIdx.x);
    const int lane = tid & 31, warp = tid >> 5;
    const TileSpec tb = load_tile_spec(a, b);
    BlendWindow wb;
    if (!blend_window(a, tb, wb)) return;  // the same for every thread of the block

    if (tid == 0) s_count = 0;
    __syncthreads();
    // Ordered compaction of the overlapping tiles (the loop bounds are block-uniform).
    for (index_t base = 0; base < a.n_tiles; base += kThreadsPerBlock) {
        const index_t t = base + tid;
        bool hit = false;
        if (t < a.n_tiles) {
            const TileSpec ts = load_tile_spec(a, t);
            BlendWindow wt;
            hit = same_target(ts, tb) && blend_window(a, ts, wt) && windows_intersect(wb, wt);
        }
        const unsigned mask = __ballot_sync(0xffffffffu, hit);
        if (lane == 0) s_warp_hits[warp] = __popc(mask);
        __syncthreads();
        index_t pos = s_count + __popc(mask & ((1u << lane) - 1u));
        for (int w = 0; w < warp; ++w) pos += s_warp_hits[w];
        if (hit && pos < kBlendListCapacity) s_list[pos] = static_cast<std::int32_t>(t);
        __syncthreads();
        if (tid == 0) {
            index_t total = 0;
            for (int w = 0; w < kThreadsPerBlock / 32; ++w) total += s_warp_hits[w];
            s_count += total;
        }
        __syncthreads();
    }
    const index_t n_list = s_count;
    // More overlapping tiles than the list holds: scan the whole batch instead (same result).
    const bool use_list = n_list <= kBlendListCapacity;
    if (use_list) {  // block-uniform
        for (index_t i = tid; i < n_list; i += kThreadsPerBlock) s_cand[i] = make_blend_candidate(a, s_list[i]);
        __syncthreads();
    }

    index_t lo[3], hi[3];
    if (!clip_to_slab(wb, load_output(a.outputs, tb.data_idx), lo, hi)) return;  // block-uniform
    const index_t n[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
    const index_t n_voxels = n[0] * n[1] * n[2];
    for (index_t v = static_cast<index_t>(blockIdx.y) * blockDim.x + tid; v < n_voxels;
         v += static_cast<index_t>(gridDim.y) * blockDim.x) {
        index_t s[3];
        s[2] = lo[2] + v % n[2];
        const index_t rest = v / n[2];
        s[1] = lo[1] + rest % n[1];
        s[0] = lo[0] + rest / n[1];
        if (use_list)
            blend_voxel_candidates(a, b, tb.data_idx, tb.sample, s, s_cand, n_list);
        else
            blend_voxel(a, b, tb.data_idx, tb.sample, s, nullptr, a.n_tiles);
    }
}

}  // namespace

void stitch_crop_cuda(const StitchArgs& a, std::uintptr_t stream) {
    const index_t n_rows = crop_row_count(a);
    if (n_rows <= 0) return;
    const int shift = lanes_per_row_shift(a.tile[2]);
    launch_kernel("stitch_tiles (crop) kernel launch", crop_kernel, row_blocks(n_rows, shift, kRowsPerLane), kThreadsPerBlock,
                  reinterpret_cast<cudaStream_t>(stream), a, n_rows, shift);
}

void stitch_blend_cuda(const StitchArgs& a, std::uintptr_t stream) {
    if (a.n_tiles <= 0) return;
    const index_t tile_voxels = a.tile[0] * a.tile[1] * a.tile[2];
    index_t chunks = (tile_voxels + kBlendVoxelsPerBlock - 1) / kBlendVoxelsPerBlock;
    if (chunks > 65535) chunks = 65535;
    if (chunks < 1) chunks = 1;
    const dim3 grid(static_cast<unsigned>(a.n_tiles), static_cast<unsigned>(chunks));
    launch_kernel("stitch_tiles (blend) kernel launch", blend_kernel, grid, kThreadsPerBlock, reinterpret_cast<cudaStream_t>(stream),
                  a);
}

}  // namespace cupatch
