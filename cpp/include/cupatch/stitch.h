// SPDX-License-Identifier: BSD-3-Clause
// Tile stitching (docs/contracts.md, "Stitch") as host/device code.
//
// Tiles are C-contiguous float32 (B, C, TZ, TY, TX) (TZ = 1 for 2-D); outputs and weights
// are C-contiguous float32 arrays described by an output table (view.h), each possibly a
// slab [origin, origin + shape) of a larger image.
//
// crop : every tile row (b, c, tz, ty) inside the kept region is copied to its stitch
//        position; crop_row() gives the x range and the destination. Kept regions are
//        assumed disjoint (any CAREamics tiling); if a caller's overlap, the overlapping
//        voxels get one of the tiles' values, unspecified which (plain stores of whole
//        floats from several threads: no torn values, no out-of-bounds access).
// blend: every image voxel covered by tiles of the batch is written by exactly one thread,
//        the one of the lowest covering batch index, which adds the weighted contributions
//        of all covering tiles in ascending batch order (blend_voxel()). No atomics, no
//        races, identical results on every backend.
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
    t.data_idx = row[0];
    t.sample = row[1];
    for (int d = 0; d < 3; ++d) {
        t.coords[d] = 0;
        t.crop[d] = 0;
        t.size[d] = 1;
        t.stitch[d] = 0;
    }
    for (int d = 0; d < n; ++d) {
        t.coords[off + d] = clamp_coord(row[2 + d]);  // overflow-safe arithmetic (common.h)
        t.crop[off + d] = clamp_coord(row[2 + n + d]);
        t.size[off + d] = clamp_coord(row[2 + 2 * n + d]);
        t.stitch[off + d] = clamp_coord(row[2 + 3 * n + d]);
    }
    return t;
}

// True when the tile's data_idx and sample_idx address an existing output sample.
CUPATCH_HD bool tile_target_valid(const StitchArgs& a, const TileSpec& t) {
    if (t.data_idx < 0 || t.data_idx >= a.n_outputs) return false;
    const OutputView o = load_output(a.outputs, t.data_idx);
    return t.sample >= 0 && t.sample < o.shape[0];
}

// ---------------------------------------------------------------------------------------
// crop

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
    const index_t ty = row % a.tile[1];
    row /= a.tile[1];
    const index_t tz = row % a.tile[0];
    row /= a.tile[0];
    return crop_row_at(a, row / a.channels, row % a.channels, tz, ty);
}

// ---------------------------------------------------------------------------------------
// blend

// Read window of a tile clipped to the image, per axis [lo, hi), and the border flag
// f = left_border + 2 * right_border of the window table. Returns false when the tile
// addresses no output or its clipped window is empty.
struct BlendWindow {
    index_t lo[3];
    index_t hi[3];
    unsigned flag[3];
};

CUPATCH_HD bool blend_window(const StitchArgs& a, const TileSpec& t, BlendWindow& w) {
    if (!tile_target_valid(a, t)) return false;
    const OutputView o = load_output(a.outputs, t.data_idx);
    bool nonempty = true;
    for (int d = 0; d < 3; ++d) {
        const index_t c = t.coords[d], n = o.image[d], size = a.tile[d];
        w.lo[d] = max_i(c, 0);
        w.hi[d] = min_i(c + size, n);
        w.flag[d] = (c <= 0 ? 1u : 0u) + (c + size >= n ? 2u : 0u);
        if (w.hi[d] <= w.lo[d]) nonempty = false;
    }
    return nonempty;
}

// Separable window weight at tile position p, multiplied left to right (Z, Y, X), no
// contraction. Split in two so row-wise loops can hoist the (Z, Y) part:
// weight = blend_weight_x(blend_weight_zy(...), ...).
CUPATCH_HD float blend_weight_zy(const StitchArgs& a, const BlendWindow& w, const index_t p[3]) {
    const index_t T = a.window_len;
    if (a.ndim == 3) {
        const float wz = a.window[(0 * 4 + w.flag[0]) * T + p[0]];
        const float wy = a.window[(1 * 4 + w.flag[1]) * T + p[1]];
        return mul_rn(wz, wy);
    }
    return a.window[(0 * 4 + w.flag[1]) * T + p[1]];
}

CUPATCH_HD float blend_weight_x(const StitchArgs& a, float weight_zy, unsigned flag_x, index_t px) {
    const float wx = a.window[((a.ndim - 1) * 4 + flag_x) * a.window_len + px];
    return mul_rn(weight_zy, wx);
}

CUPATCH_HD float blend_weight(const StitchArgs& a, const BlendWindow& w, const index_t p[3]) {
    return blend_weight_x(a, blend_weight_zy(a, w, p), w.flag[2], p[2]);
}

// True when tiles b and t of the batch could share a voxel (same output sample and
// intersecting clipped windows). Candidate lists for blend_voxel are built with this.
CUPATCH_HD bool blend_tiles_overlap(const StitchArgs& a, index_t b, index_t t) {
    const TileSpec sb = load_tile_spec(a, b), st = load_tile_spec(a, t);
    if (sb.data_idx != st.data_idx || sb.sample != st.sample) return false;
    BlendWindow wb, wt;
    if (!blend_window(a, sb, wb) || !blend_window(a, st, wt)) return false;
    for (int d = 0; d < 3; ++d)
        if (max_i(wb.lo[d], wt.lo[d]) >= min_i(wb.hi[d], wt.hi[d])) return false;
    return true;
}

// Does tile t cover image voxel s of (data_idx, sample)? On success p is the tile position.
CUPATCH_HD bool blend_covers(const StitchArgs& a, index_t t, index_t data_idx, index_t sample, const index_t s[3],
                             BlendWindow& w, index_t p[3]) {
    const TileSpec ts = load_tile_spec(a, t);
    if (ts.data_idx != data_idx || ts.sample != sample) return false;
    if (!blend_window(a, ts, w)) return false;
    for (int d = 0; d < 3; ++d) {
        if (s[d] < w.lo[d] || s[d] >= w.hi[d]) return false;
        p[d] = s[d] - ts.coords[d];
    }
    return true;
}

// Accumulate image voxel s (inside tile b's clipped window and inside the output slab)
// if b owns it. `cand` lists, in ascending order, every tile that may cover the voxel
// (nullptr means all tiles 0..n_cand-1). Returns whether b owned the voxel.
//
// The covering tiles are collected once (up to kBlendMaxCover of them; more only happens
// with pathological overlaps and takes a slower path that recomputes them per channel).
constexpr int kBlendMaxCover = 32;

// Add the covering tiles' contributions (weights w[j], channel-0 tile offsets off[j], in
// ascending batch order) to output voxel (sample, dz, dy, dx) and its weight.
CUPATCH_HD void blend_accumulate(const StitchArgs& a, const OutputView& o, index_t sample, index_t dz, index_t dy, index_t dx,
                                 const float* w, const index_t* off, int n) {
    const index_t tile_voxels = a.tile[0] * a.tile[1] * a.tile[2];
    const index_t n_channels = min_i(a.channels, o.shape[1]);
    for (index_t c = 0; c < n_channels; ++c) {
        float acc = 0.0f;
        for (int j = 0; j < n; ++j) acc = add_rn(acc, mul_rn(w[j], a.tiles[off[j] + c * tile_voxels]));
        float* out = o.data + contiguous_offset(o.shape, sample, c, dz, dy, dx);
        *out = add_rn(*out, acc);
    }
    if (o.weight) {
        float wsum = 0.0f;
        for (int j = 0; j < n; ++j) wsum = add_rn(wsum, w[j]);
        const index_t wshape[5] = {o.shape[0], 1, o.shape[2], o.shape[3], o.shape[4]};
        float* wt = o.weight + contiguous_offset(wshape, sample, 0, dz, dy, dx);
        *wt = add_rn(*wt, wsum);
    }
}

CUPATCH_HD bool blend_voxel(const StitchArgs& a, index_t b, index_t data_idx, index_t sample, const index_t s[3],
                            const std::int32_t* cand, index_t n_cand) {
    const index_t TZ = a.tile[0], TY = a.tile[1], TX = a.tile[2];
    const index_t tile_voxels = TZ * TY * TX;
    float cov_w[kBlendMaxCover];
    index_t cov_off[kBlendMaxCover];
    int n_cov = 0;
    bool overflow = false;
    BlendWindow w;
    index_t p[3];
    for (index_t i = 0; i < n_cand; ++i) {
        const index_t t = cand ? cand[i] : i;
        if (!blend_covers(a, t, data_idx, sample, s, w, p)) continue;
        if (t < b) return false;  // owner rule: the lowest covering batch index writes
        if (n_cov == kBlendMaxCover) {
            overflow = true;
            break;
        }
        cov_w[n_cov] = blend_weight(a, w, p);
        cov_off[n_cov] = t * a.channels * tile_voxels + (p[0] * TY + p[1]) * TX + p[2];
        ++n_cov;
    }
    const OutputView o = load_output(a.outputs, data_idx);
    const index_t dz = s[0] - o.origin[0], dy = s[1] - o.origin[1], dx = s[2] - o.origin[2];
    if (dz < 0 || dz >= o.shape[2] || dy < 0 || dy >= o.shape[3] || dx < 0 || dx >= o.shape[4]) return false;
    if (!overflow) {
        blend_accumulate(a, o, sample, dz, dy, dx, cov_w, cov_off, n_cov);
        return true;
    }
    const index_t n_channels = min_i(a.channels, o.shape[1]);
    float wsum = 0.0f;
    for (index_t c = 0; c < n_channels; ++c) {
        float acc = 0.0f;
        for (index_t i = 0; i < n_cand; ++i) {
            const index_t t = cand ? cand[i] : i;
            if (t < b || !blend_covers(a, t, data_idx, sample, s, w, p)) continue;
            const float v = a.tiles[(((t * a.channels + c) * TZ + p[0]) * TY + p[1]) * TX + p[2]];
            acc = add_rn(acc, mul_rn(blend_weight(a, w, p), v));
        }
        float* out = o.data + contiguous_offset(o.shape, sample, c, dz, dy, dx);
        *out = add_rn(*out, acc);
    }
    for (index_t i = 0; i < n_cand; ++i) {
        const index_t t = cand ? cand[i] : i;
        if (t < b || !blend_covers(a, t, data_idx, sample, s, w, p)) continue;
        wsum = add_rn(wsum, blend_weight(a, w, p));
    }
    if (o.weight) {
        const index_t wshape[5] = {o.shape[0], 1, o.shape[2], o.shape[3], o.shape[4]};
        float* wt = o.weight + contiguous_offset(wshape, sample, 0, dz, dy, dx);
        *wt = add_rn(*wt, wsum);
    }
    return true;
}

// A batch tile that may cover voxels of the tile being blended, with its clipped window
// precomputed (the CUDA kernel keeps a block's candidates in shared memory).
struct BlendCandidate {
    index_t t;
    index_t coords[3];
    BlendWindow w;
};

CUPATCH_HD BlendCandidate make_blend_candidate(const StitchArgs& a, index_t t) {
    BlendCandidate c;
    const TileSpec ts = load_tile_spec(a, t);
    c.t = t;
    for (int d = 0; d < 3; ++d) c.coords[d] = ts.coords[d];
    if (!blend_window(a, ts, c.w))
        for (int d = 0; d < 3; ++d) c.w.lo[d] = c.w.hi[d] = 0;  // covers nothing
    return c;
}

// blend_voxel() for a list of precomputed candidates: every tile of the same output sample
// whose window may contain s, in ascending batch order. Same owner rule, same sums.
CUPATCH_HD bool blend_voxel_candidates(const StitchArgs& a, index_t b, index_t data_idx, index_t sample, const index_t s[3],
                                       const BlendCandidate* cand, index_t n_cand) {
    const index_t TY = a.tile[1], TX = a.tile[2];
    const index_t tile_voxels = a.tile[0] * TY * TX;
    float cov_w[kBlendMaxCover];
    index_t cov_off[kBlendMaxCover];
    int n_cov = 0;
    for (index_t i = 0; i < n_cand; ++i) {
        const BlendCandidate& c = cand[i];
        if (s[0] < c.w.lo[0] || s[0] >= c.w.hi[0] || s[1] < c.w.lo[1] || s[1] >= c.w.hi[1] || s[2] < c.w.lo[2] ||
            s[2] >= c.w.hi[2])
            continue;
        if (c.t < b) return false;  // owner rule: the lowest covering batch index writes
        if (n_cov == kBlendMaxCover) return blend_voxel(a, b, data_idx, sample, s, nullptr, a.n_tiles);
        const index_t p[3] = {s[0] - c.coords[0], s[1] - c.coords[1], s[2] - c.coords[2]};
        cov_w[n_cov] = blend_weight(a, c.w, p);
        cov_off[n_cov] = c.t * a.channels * tile_voxels + (p[0] * TY + p[1]) * TX + p[2];
        ++n_cov;
    }
    const OutputView o = load_output(a.outputs, data_idx);
    const index_t dz = s[0] - o.origin[0], dy = s[1] - o.origin[1], dx = s[2] - o.origin[2];
    if (dz < 0 || dz >= o.shape[2] || dy < 0 || dy >= o.shape[3] || dx < 0 || dx >= o.shape[4]) return false;
    blend_accumulate(a, o, sample, dz, dy, dx, cov_w, cov_off, n_cov);
    return true;
}

void stitch_crop_cpu(const StitchArgs& args);
void stitch_blend_cpu(const StitchArgs& args);
// The CUDA blend scheme (candidate lists + blend_voxel) run on the CPU, for tests.
void stitch_blend_voxelwise_cpu(const StitchArgs& args, bool candidate_lists);
void stitch_crop_cuda(const StitchArgs& args, std::uintptr_t stream);
void stitch_blend_cuda(const StitchArgs& args, std::uintptr_t stream);

}  // namespace cupatch
