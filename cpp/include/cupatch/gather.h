// SPDX-License-Identifier: BSD-3-Clause
// Batched patch gather: the contract (docs/contracts.md, "Gather") as host/device code.
//
// The output batch is (B, C_out, PZ, PY, PX) (PZ = 1 for 2-D), C-contiguous. Work is split
// into output *rows* (b, k, qz, qy); along a row the source position is an affine function
// of qx (flips and quarter turns only permute/reverse axes), so gather_row() returns one
// base offset, one element step and the in-image range of qx. Both backends iterate rows
// with this function and differ only in how rows are distributed.
#pragma once

#include "cupatch/common.h"
#include "cupatch/dtype.h"
#include "cupatch/view.h"

namespace cupatch {

// Per-patch augmentation flags (one uint8 per patch).
constexpr unsigned kAugFlipY = 1u;
constexpr unsigned kAugFlipX = 2u;
constexpr unsigned kAugRotShift = 2u;  // bits 2-3: number of quarter turns (0..3)

struct GatherArgs {
    const index_t* sources;  // (n_sources, kSourceFields) source table
    index_t n_sources;
    DType source_dtype;
    const index_t* specs;  // (n_patches, spec_cols) patch table; columns data_idx, sample_idx, coords
    index_t n_patches;
    index_t spec_cols;
    int ndim;                 // 2 or 3 spatial dimensions
    index_t patch[3];         // (PZ, PY, PX); PZ = 1 for 2-D
    const index_t* channels;  // (n_channels,) source channel of each output channel
    index_t n_channels;
    const float* affine;       // (2, n_channels): scale row then shift row; nullptr = identity
    const std::uint8_t* aug;   // (n_patches,) flags; nullptr = no augmentation
    void* out;                 // (n_patches, n_channels, PZ, PY, PX) of out_dtype
    DType out_dtype;
};

CUPATCH_HD index_t gather_row_count(const GatherArgs& a) {
    return a.n_patches * a.n_channels * a.patch[0] * a.patch[1];
}

// One output row mapped to its source: element qx of the row reads
// source[base + qx * step] when lo <= qx < hi, and the zero pad value otherwise.
struct GatherRow {
    const void* data;
    index_t base;
    index_t step;
    index_t lo;
    index_t hi;
    float scale;
    float shift;
};

// Narrow [lo, hi) (a subrange of [0, n_q)) to the q for which a + b * q lies in [0, n)
// (b in {-1, 0, 1}). An empty result is always lo = hi = 0.
CUPATCH_HD void clip_axis(index_t a, index_t b, index_t n, index_t& lo, index_t& hi) {
    if (b == 0) {
        if (a < 0 || a >= n) hi = lo;
    } else if (b > 0) {
        lo = max_i(lo, -a);
        hi = min_i(hi, n - a);
    } else {
        lo = max_i(lo, a - n + 1);
        hi = min_i(hi, a + 1);
    }
    if (hi <= lo) lo = hi = 0;  // empty: keep 0 <= lo <= hi <= n_q for the fill loops
}

// Linear output row index (over (b, k, qz, qy), C order) -> its position.
CUPATCH_HD RowIndex gather_row_index(const GatherArgs& a, index_t row) {
    return unravel_row(row, a.n_channels, a.patch[0], a.patch[1]);
}

// One output plane (b, k, qz) mapped to its source. Along a row the source moves by `step`
// per qx, from row to row by `row_step` per qy (flips and quarter turns only permute and
// reverse axes), so row qy of the plane reads source[base + qy * row_step + qx * step]
// for row_lo <= qy < row_hi and lo <= qx < hi, and padding everywhere else.
struct GatherPlane {
    const void* data;
    index_t base;
    index_t row_step;
    index_t step;
    index_t lo, hi;          // in-image qx range (the same for every row of the plane)
    index_t row_lo, row_hi;  // rows that lie inside the image
    float scale, shift;
};

CUPATCH_HD GatherPlane gather_plane(const GatherArgs& a, index_t b, index_t k, index_t qz) {
    const index_t PY = a.patch[1], PX = a.patch[2];
    GatherPlane g;
    g.data = nullptr;
    g.base = g.row_step = g.step = 0;
    g.lo = g.hi = g.row_lo = g.row_hi = 0;
    g.scale = a.affine ? a.affine[k] : 1.0f;
    g.shift = a.affine ? a.affine[a.n_channels + k] : 0.0f;

    const index_t* spec = a.specs + b * a.spec_cols;
    const index_t data_idx = spec[kSpecDataIdx.first];
    const index_t sample = spec[kSpecSample.first];
    index_t coords[3] = {0, 0, 0};
    for (int d = 0; d < a.ndim; ++d) coords[3 - a.ndim + d] = clamp_coord(spec[spec_coords(a.ndim).first + d]);
    // Invalid indices read nothing (the whole plane is padding): kernels never go out of bounds.
    if (data_idx < 0 || data_idx >= a.n_sources) return g;
    const SourceView src = load_source(a.sources, data_idx);
    const index_t channel = a.channels[k];
    if (sample < 0 || sample >= src.shape[0] || channel < 0 || channel >= src.shape[1]) return g;
    const index_t sz = coords[0] + qz;
    if (sz < 0 || sz >= src.shape[2]) return g;

    // Output (qy, qx) -> flipped patch (my, mx) = inverse of np.rot90, each as
    // m0 + m_qy * qy + m_qx * qx.
    const unsigned flags = a.aug ? a.aug[b] : 0u;
    const unsigned turns = (flags >> kAugRotShift) & 3u;
    index_t my0, my_qy, my_qx, mx0, mx_qy, mx_qx;
    switch (turns) {
        case 1:  // out[i, j] = m[j, PX - 1 - i]
            my0 = 0, my_qy = 0, my_qx = 1, mx0 = PX - 1, mx_qy = -1, mx_qx = 0;
            break;
        case 2:  // out[i, j] = m[PY - 1 - i, PX - 1 - j]
            my0 = PY - 1, my_qy = -1, my_qx = 0, mx0 = PX - 1, mx_qy = 0, mx_qx = -1;
            break;
        case 3:  // out[i, j] = m[PY - 1 - j, i]
            my0 = PY - 1, my_qy = 0, my_qx = -1, mx0 = 0, mx_qy = 1, mx_qx = 0;
            break;
        default:
            my0 = 0, my_qy = 1, my_qx = 0, mx0 = 0, mx_qy = 0, mx_qx = 1;
            break;
    }
    // Flipped patch -> patch: flip Y, then X.
    const bool fy = flags & kAugFlipY, fx = flags & kAugFlipX;
    const index_t py0 = fy ? PY - 1 - my0 : my0, py_qy = fy ? -my_qy : my_qy, py_qx = fy ? -my_qx : my_qx;
    const index_t px0 = fx ? PX - 1 - mx0 : mx0, px_qy = fx ? -mx_qy : mx_qy, px_qx = fx ? -mx_qx : mx_qx;

    // Patch -> source: sy = sy0 + py_qy * qy + py_qx * qx (likewise x). Each source axis
    // follows either qy or qx, which bounds the rows or the columns respectively.
    const index_t sy0 = coords[1] + py0, sx0 = coords[2] + px0;
    index_t lo = 0, hi = PX, row_lo = 0, row_hi = PY;
    if (py_qx != 0)
        clip_axis(sy0, py_qx, src.shape[3], lo, hi);
    else
        clip_axis(sy0, py_qy, src.shape[3], row_lo, row_hi);
    if (px_qx != 0)
        clip_axis(sx0, px_qx, src.shape[4], lo, hi);
    else
        clip_axis(sx0, px_qy, src.shape[4], row_lo, row_hi);
    if (hi <= lo || row_hi <= row_lo) return g;

    g.data = src.data;
    g.lo = lo;
    g.hi = hi;
    g.row_lo = row_lo;
    g.row_hi = row_hi;
    g.base = sample * src.strides[0] + channel * src.strides[1] + sz * src.strides[2] + sy0 * src.strides[3] +
             sx0 * src.strides[4];
    g.row_step = py_qy * src.strides[3] + px_qy * src.strides[4];
    g.step = py_qx * src.strides[3] + px_qx * src.strides[4];
    return g;
}

// Row qy of a mapped plane.
CUPATCH_HD GatherRow plane_row(const GatherPlane& g, index_t qy) {
    GatherRow r;
    r.data = g.data;
    r.scale = g.scale;
    r.shift = g.shift;
    r.step = g.step;
    r.base = g.base + qy * g.row_step;
    const bool inside = qy >= g.row_lo && qy < g.row_hi;
    r.lo = inside ? g.lo : 0;
    r.hi = inside ? g.hi : 0;
    return r;
}

// Map output row (b, k, qz, qy) to its source.
CUPATCH_HD GatherRow gather_row_at(const GatherArgs& a, const RowIndex& i) {
    return plane_row(gather_plane(a, i.b, i.k, i.qz), i.qy);
}

CUPATCH_HD GatherRow gather_row(const GatherArgs& a, index_t row) { return gather_row_at(a, gather_row_index(a, row)); }

// Contract step 4: float32(raw) * scale + shift, no FMA contraction.
CUPATCH_HD float gather_affine(float raw, float scale, float shift) { return add_rn(mul_rn(raw, scale), shift); }

// Value of element qx of a mapped row.
template <class T>
CUPATCH_HD float gather_value(const GatherRow& r, index_t qx) {
    float raw = 0.0f;
    if (qx >= r.lo && qx < r.hi) raw = to_float(static_cast<const T*>(r.data)[r.base + qx * r.step]);
    return gather_affine(raw, r.scale, r.shift);
}

// Host and device entry points (pointers live in host or device memory respectively).
void gather_cpu(const GatherArgs& args);
void gather_cuda(const GatherArgs& args, std::uintptr_t stream);

}  // namespace cupatch
