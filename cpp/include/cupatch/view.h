// SPDX-License-Identifier: BSD-3-Clause
// Descriptor tables for sources (gather) and outputs (stitch), and the spec tables' columns.
//
// Both cross from Python as C-contiguous int64 tables, one row per array, built once in
// Python (cupatch.ops.SourceTable) and, on the GPU, uploaded as a small CuPy array. The
// kernels read their rows directly, so one launch serves any number of arrays.
#pragma once

#include "cupatch/common.h"

namespace cupatch {

// Every table column layout lives here (the kernels, the bindings and, through the exported
// _core.*_COLUMNS, the Python side read it from this one place). A column span is its first
// column and its width.
struct ColumnSpan {
    int first, width;
};

// Source table row: data pointer, shape (S, C, Z, Y, X), strides in elements (same order).
// 2-D sources are described with Z = 1 and a zero Z stride.
constexpr ColumnSpan kSourceData{0, 1}, kSourceShape{1, 5}, kSourceStrides{6, 5};
constexpr int kSourceFields = 11;

struct SourceView {
    const void* data;
    index_t shape[5];
    index_t strides[5];
};

CUPATCH_HD SourceView load_source(const index_t* table, index_t i) {
    const index_t* row = table + i * kSourceFields;
    SourceView v;
    v.data = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(row[kSourceData.first]));
    for (int d = 0; d < 5; ++d) {
        v.shape[d] = row[kSourceShape.first + d];
        v.strides[d] = row[kSourceStrides.first + d];
    }
    return v;
}

// Output table row: output pointer, weight pointer (0 for crop), output shape (S, C, Z, Y, X)
// of the C-contiguous float32 array, origin (Z, Y, X) of that array inside the image, and
// the full image shape (Z, Y, X). 2-D outputs use Z = 1, origin 0, image Z = 1.
constexpr ColumnSpan kOutputData{0, 1}, kOutputWeight{1, 1}, kOutputShape{2, 5}, kOutputOrigin{7, 3}, kOutputImage{10, 3};
constexpr int kOutputFields = 13;

struct OutputView {
    float* data;
    float* weight;
    index_t shape[5];
    index_t origin[3];
    index_t image[3];
};

CUPATCH_HD OutputView load_output(const index_t* table, index_t i) {
    const index_t* row = table + i * kOutputFields;
    OutputView v;
    v.data = reinterpret_cast<float*>(static_cast<std::uintptr_t>(row[kOutputData.first]));
    v.weight = reinterpret_cast<float*>(static_cast<std::uintptr_t>(row[kOutputWeight.first]));
    for (int d = 0; d < 5; ++d) v.shape[d] = row[kOutputShape.first + d];
    for (int d = 0; d < 3; ++d) {
        v.origin[d] = row[kOutputOrigin.first + d];
        v.image[d] = row[kOutputImage.first + d];
    }
    return v;
}

// Spec tables, one row per patch (gather) or tile (stitch), for `ndim` spatial axes:
// patch specs are (data_idx, sample_idx, coords[ndim]); tile specs are (data_idx,
// sample_idx, coords[ndim], crop[ndim], size[ndim], stitch[ndim]), where coords is the
// tile's corner in the image, crop/size its kept region inside the tile and stitch where
// that region lands in the image. Extra trailing columns are allowed and ignored.
constexpr ColumnSpan kSpecDataIdx{0, 1}, kSpecSample{1, 1};
CUPATCH_HD constexpr ColumnSpan spec_coords(int ndim) { return {2, ndim}; }
CUPATCH_HD constexpr ColumnSpan tile_spec_crop(int ndim) { return {2 + ndim, ndim}; }
CUPATCH_HD constexpr ColumnSpan tile_spec_size(int ndim) { return {2 + 2 * ndim, ndim}; }
CUPATCH_HD constexpr ColumnSpan tile_spec_stitch(int ndim) { return {2 + 3 * ndim, ndim}; }
CUPATCH_HD constexpr int patch_spec_columns(int ndim) { return 2 + ndim; }
CUPATCH_HD constexpr int tile_spec_columns(int ndim) { return 2 + 4 * ndim; }

// Offset of voxel (sample, channel, z, y, x) in a C-contiguous (S, C, Z, Y, X) array.
CUPATCH_HD index_t contiguous_offset(const index_t shape[5], index_t s, index_t c, index_t z, index_t y, index_t x) {
    return (((s * shape[1] + c) * shape[2] + z) * shape[3] + y) * shape[4] + x;
}

}  // namespace cupatch
