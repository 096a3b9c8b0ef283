// SPDX-License-Identifier: BSD-3-Clause
// Tile stitching (docs/contracts.md, "Stitch"): what crop (crop.h) and blend (blend.h)
// share, as host/device code.
//
// Tiles are C-contiguous float32 (B, C, TZ, TY, TX) (TZ = 1 for 2-D); outputs and weights
// are C-contiguous float32 arrays described by an output table (view.h), each possibly a
// slab [origin, origin + shape) of a larger image.
#pragma once

#include "cupatch/common.h"
#include "cupatch/view.h"

namespace cupatch {

struct StitchArgs {
    const float* tiles;  // (n_tiles, channels, TZ, TY, TX)
    index_t n_tiles;
    index_t channels;
    index_t tile[3];       // (TZ, TY, TX)
    const index_t* specs;  // (n_tiles, spec_cols) tile table
    index_t spec_cols;
    int ndim;
    const index_t* outputs;  // (n_outputs, kOutputFields) output table
    index_t n_outputs;
    const float* window;  // blend only: (ndim, 4, window_len) table
    index_t window_len;
};

// The tile-table fields of one tile, expanded to (Z, Y, X): 2-D tiles get Z coords 0,
// crop 0, crop size 1 and stitch 0. Values are clamped to +-kCoordLimit (common.h).
struct TileSpec {
    index_t data_idx;
    index_t sample;
    index_t coords[3];
    index_t crop[3];
    index_t size[3];
    index_t stitch[3];
};

CUPATCH_HD TileSpec load_tile_spec(const StitchArgs& a, index_t b) {
    const index_t* row = a.specs + b * a.spec_cols;
    const int n = a.ndim, off = 3 - a.ndim;
    TileSpec t;
    t.data_idx = row[kSpecDataIdx.first];
    t.sample = row[kSpecSample.first];
    for (int d = 0; d < 3; ++d) {
        t.coords[d] = 0;
        t.crop[d] = 0;
        t.size[d] = 1;
        t.stitch[d] = 0;
    }
    for (int d = 0; d < n; ++d) {
        t.coords[off + d] = clamp_coord(row[spec_coords(n).first + d]);  // overflow-safe arithmetic (common.h)
        t.crop[off + d] = clamp_coord(row[tile_spec_crop(n).first + d]);
        t.size[off + d] = clamp_coord(row[tile_spec_size(n).first + d]);
        t.stitch[off + d] = clamp_coord(row[tile_spec_stitch(n).first + d]);
    }
    return t;
}

// True when the tile's data_idx and sample_idx address an existing output sample.
CUPATCH_HD bool tile_target_valid(const StitchArgs& a, const TileSpec& t) {
    if (t.data_idx < 0 || t.data_idx >= a.n_outputs) return false;
    const OutputView o = load_output(a.outputs, t.data_idx);
    return t.sample >= 0 && t.sample < o.shape[0];
}

// Tiles b and t address the same output sample.
CUPATCH_HD bool same_target(const TileSpec& b, const TileSpec& t) { return b.data_idx == t.data_idx && b.sample == t.sample; }

}  // namespace cupatch
