// SPDX-License-Identifier: BSD-3-Clause
// Blend stitching (docs/contracts.md, "Stitch", blend) as host/device code: every image
// voxel covered by tiles of the batch is written by exactly one thread, the one of the
// lowest covering batch index, which adds the weighted contributions of all covering tiles
// in ascending batch order (blend_voxel()). No atomics, no races, identical results on
// every backend.
#pragma once

#include "cupatch/stitch.h"

namespace cupatch {

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

// True when two clipped windows share a voxel.
CUPATCH_HD bool windows_intersect(const BlendWindow& u, const BlendWindow& v) {
    for (int d = 0; d < 3; ++d)
        if (max_i(u.lo[d], v.lo[d]) >= min_i(u.hi[d], v.hi[d])) return false;
    return true;
}

// Window w clipped to the slab of output o, per axis [lo, hi); false when that is empty.
CUPATCH_HD bool clip_to_slab(const BlendWindow& w, const OutputView& o, index_t lo[3], index_t hi[3]) {
    bool nonempty = true;
    for (int d = 0; d < 3; ++d) {
        lo[d] = max_i(w.lo[d], o.origin[d]);
        hi[d] = min_i(w.hi[d], o.origin[d] + o.shape[2 + d]);
        if (hi[d] <= lo[d]) nonempty = false;
    }
    return nonempty;
}

// True when tiles b and t of the batch could share a voxel (same output sample and
// intersecting clipped windows). Candidate lists for blend_voxel are built with this.
CUPATCH_HD bool blend_tiles_overlap(const StitchArgs& a, index_t b, index_t t) {
    const TileSpec sb = load_tile_spec(a, b), st = load_tile_spec(a, t);
    BlendWindow wb, wt;
    return same_target(sb, st) && blend_window(a, sb, wb) && blend_window(a, st, wt) && windows_intersect(wb, wt);
}

// Does tile t cover image voxel s of (data_idx, sample)? On success p is the tile position.
CUPATCH_HD bool blend_covers(const StitchArgs& a, index_t t, index_t data_idx, index_t sample, const index_t s[3],
                             BlendWindow& w, index_t p[3]) {
    const TileSpec ts = load_tile_spec(a, t);
    if (ts.data_idx != data_idx || ts.sample != sample || !blend_window(a, ts, w)) return false;
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

// Entry points (pointers in host or device memory respectively).
void stitch_blend_cpu(const StitchArgs& args);
// The CUDA blend scheme (candidate lists + blend_voxel) run on the CPU, for tests.
void stitch_blend_voxelwise_cpu(const StitchArgs& args, bool candidate_lists);
void stitch_blend_cuda(const StitchArgs& args, std::uintptr_t stream);

}  // namespace cupatch
