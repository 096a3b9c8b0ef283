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

// Position of an output row: patch b, output channel k, plane qz, line qy.
struct RowIndex {
    index_t b, k, qz, qy;
};

// Linear row index (over (b, k, qz, qy), C order) -> its position.
CUPATCH_HD RowIndex gather_row_index(const GatherArgs& a, index_t row) {
    RowIndex i;
    i.qy = row % a.patch[1];
    row /= a.patch[1];
    i.qz = row % a.patch[0];
    row /= a.patch[0];
    i.k = row % a.n_channels;
    i.b = row / a.n_channels;
    return i;
}

// Map output row (b, k, qz, qy) to its source.
CUPATCH_HD GatherRow gather_row_at(const GatherArgs& a, const RowIndex& i) {
    const index_t PY = a.patch[1], PX = a.patch[2];
    const index_t b = i.b, k = i.k, qz = i.qz, qy = i.qy;

    GatherRow r;
    r.data = nullptr;
    r.base = 0;
    r.step = 0;
    r.lo = 0;
    r.hi = 0;
    r.scale = a.affine ? a.affine[k] : 1.0f;
    r.shift = a.affine ? a.affine[a.n_channels + k] : 0.0f;

    const index_t* spec = a.specs + b * a.spec_cols;
    const index_t data_idx = spec[0];
    const index_t sample = spec[1];
    index_t coords[3] = {0, 0, 0};
    for (int d = 0; d < a.ndim; ++d) coords[3 - a.ndim + d] = spec[2 + d];
    // Invalid indices read nothing (the whole row is padding): kernels never go out of bounds.
    if (data_idx < 0 || data_idx >= a.n_sources) return r;
    const SourceView src = load_source(a.sources, data_idx);
    const index_t channel = a.channels[k];
    if (sample < 0 || sample >= src.shape[0] || channel < 0 || channel >= src.shape[1]) return r;

    // Output (qy, qx) -> flipped-patch (my, mx) = np.rot90 inverse, each as a + b * qx.
    const unsigned flags = a.aug ? a.aug[b] : 0u;
    const unsigned turns = (flags >> kAugRotShift) & 3u;
    index_t my_a, my_b, mx_a, mx_b;
    switch (turns) {
        case 1:  // out[i, j] = m[j, PX - 1 - i]
            my_a = 0, my_b = 1, mx_a = PX - 1 - qy, mx_b = 0;
            break;
        case 2:  // out[i, j] = m[PY - 1 - i, PX - 1 - j]
            my_a = PY - 1 - qy, my_b = 0, mx_a = PX - 1, mx_b = -1;
            break;
        case 3:  // out[i, j] = m[PY - 1 - j, i]
            my_a = PY - 1, my_b = -1, mx_a = qy, mx_b = 0;
            break;
        default:
            my_a = qy, my_b = 0, mx_a = 0, mx_b = 1;
            break;
    }
    // Flipped patch -> patch: flip Y, then X.
    const index_t py_a = (flags & kAugFlipY) ? PY - 1 - my_a : my_a;
    const index_t py_b = (flags & kAugFlipY) ? -my_b : my_b;
    const index_t px_a = (flags & kAugFlipX) ? PX - 1 - mx_a : mx_a;
    const index_t px_b = (flags & kAugFlipX) ? -mx_b : mx_b;

    // Patch -> source position.
    const index_t sz = coords[0] + qz;
    const index_t sy_a = coords[1] + py_a;
    const index_t sx_a = coords[2] + px_a;
    index_t lo = 0, hi = PX;
    if (sz < 0 || sz >= src.shape[2]) hi = 0;
    clip_axis(sy_a, py_b, src.shape[3], lo, hi);
    clip_axis(sx_a, px_b, src.shape[4], lo, hi);

    r.data = src.data;
    r.lo = lo;
    r.hi = hi;
    r.base = sample * src.strides[0] + channel * src.strides[1] + sz * src.strides[2] + sy_a * src.strides[3] +
             sx_a * src.strides[4];
    r.step = py_b * src.strides[3] + px_b * src.strides[4];
    return r;
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
