// SPDX-License-Identifier: BSD-3-Clause
// Crop stitching (docs/contracts.md, "Stitch", crop) as host/device code: every tile row
// (b, c, tz, ty) inside the tile's kept region is copied to its stitch position, clipped to
// the tile and the output slab. Kept regions are assumed disjoint (any CAREamics tiling);
// where a caller's overlap, the overlapping voxels get one of the tiles' values, unspecified
// which (plain stores of whole floats from several threads: no torn values, no
// out-of-bounds access).
#pragma once

#include "cupatch/stitch.h"

namespace cupatch {

CUPATCH_HD index_t crop_row_count(const StitchArgs& a) { return a.n_tiles * a.channels * a.tile[0] * a.tile[1]; }

// Tile row (b, c, tz, ty) -> destination. Elements tx in [lo, hi) are copied from
// tiles[src + tx] to out[dst + tx]; an empty range means nothing to do for this row.
struct CropRow {
    float* out;
    index_t src;
    index_t dst;
    index_t lo;
    index_t hi;
};

// Row (tz, ty) of channel c of tile b, whose spec t addresses output o (both valid).
CUPATCH_HD CropRow crop_row_of(const StitchArgs& a, const TileSpec& t, const OutputView& o, index_t b, index_t c,
                               index_t tz, index_t ty) {
    const index_t TZ = a.tile[0], TY = a.tile[1], TX = a.tile[2];
    CropRow r;
    r.out = nullptr;
    r.src = (((b * a.channels + c) * TZ + tz) * TY + ty) * TX;
    r.dst = 0;
    r.lo = 0;
    r.hi = 0;
    if (c >= o.shape[1]) return r;
    // Z and Y: the row must lie in the kept region and land inside the output slab.
    const index_t pos[2] = {tz, ty};
    index_t dst[2];
    for (int d = 0; d < 2; ++d) {
        if (pos[d] < t.crop[d] || pos[d] >= t.crop[d] + t.size[d]) return r;
        dst[d] = t.stitch[d] + (pos[d] - t.crop[d]) - o.origin[d];
        if (dst[d] < 0 || dst[d] >= o.shape[2 + d]) return r;
    }
    // X: kept range, clipped to the tile and to the output slab.
    const index_t shift = t.stitch[2] - t.crop[2] - o.origin[2];  // out x = tx + shift
    const index_t lo = max_i(max_i(t.crop[2], index_t(0)), -shift);
    const index_t hi = min_i(min_i(t.crop[2] + t.size[2], TX), o.shape[4] - shift);
    if (hi <= lo) return r;
    r.out = o.data;
    r.lo = lo;
    r.hi = hi;
    r.dst = contiguous_offset(o.shape, t.sample, c, dst[0], dst[1], 0) + shift;
    return r;
}

// Tile row (b, c, tz, ty) -> destination (an empty range when the tile addresses nothing).
CUPATCH_HD CropRow crop_row_at(const StitchArgs& a, index_t b, index_t c, index_t tz, index_t ty) {
    const TileSpec t = load_tile_spec(a, b);
    if (!tile_target_valid(a, t)) {
        CropRow r;
        r.out = nullptr;
        r.src = r.dst = r.lo = r.hi = 0;
        return r;
    }
    return crop_row_of(a, t, load_output(a.outputs, t.data_idx), b, c, tz, ty);
}

// Linear tile row (over (b, c, tz, ty), C order) -> destination.
CUPATCH_HD CropRow crop_row(const StitchArgs& a, index_t row) {
    const RowIndex i = unravel_row(row, a.channels, a.tile[0], a.tile[1]);
    return crop_row_at(a, i.b, i.k, i.qz, i.qy);
}

// Entry points (pointers in host or device memory respectively).
void stitch_crop_cpu(const StitchArgs& args);
void stitch_crop_cuda(const StitchArgs& args, std::uintptr_t stream);

}  // namespace cupatch
