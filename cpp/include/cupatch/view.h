// SPDX-License-Identifier: BSD-3-Clause
// Descriptor tables for sources (gather) and outputs (stitch).
//
// Both cross from Python as C-contiguous int64 tables, one row per array, built once in
// Python (cupatch.ops.SourceTable) and, on the GPU, uploaded as a small CuPy array. The
// kernels read their rows directly, so one launch serves any number of arrays.
#pragma once

#include "cupatch/common.h"

namespace cupatch {

// Source table row: data pointer, shape (S, C, Z, Y, X), strides in elements (same order).
// 2-D sources are described with Z = 1 and a zero Z stride.
constexpr int kSourceFields = 11;

struct SourceView {
    const void* data;
    index_t shape[5];
    index_t strides[5];
};

CUPATCH_HD SourceView load_source(const index_t* table, index_t i) {
    const index_t* row = table + i * kSourceFields;
    SourceView v;
    v.data = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(row[0]));
    for (int d = 0; d < 5; ++d) {
        v.shape[d] = row[1 + d];
        v.strides[d] = row[6 + d];
    }
    return v;
}

// Output table row: output pointer, weight pointer (0 for crop), output shape (S, C, Z, Y, X)
// of the C-contiguous float32 array, origin (Z, Y, X) of that array inside the image, and
// the full image shape (Z, Y, X). 2-D outputs use Z = 1, origin 0, image Z = 1.
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
    v.data = reinterpret_cast<float*>(static_cast<std::uintptr_t>(row[0]));
    v.weight = reinterpret_cast<float*>(static_cast<std::uintptr_t>(row[1]));
    for (int d = 0; d < 5; ++d) v.shape[d] = row[2 + d];
    for (int d = 0; d < 3; ++d) {
        v.origin[d] = row[7 + d];
        v.image[d] = row[10 + d];
    }
    return v;
}

// Offset of voxel (sample, channel, z, y, x) in a C-contiguous (S, C, Z, Y, X) array.
CUPATCH_HD index_t contiguous_offset(const index_t shape[5], index_t s, index_t c, index_t z, index_t y, index_t x) {
    return (((s * shape[1] + c) * shape[2] + z) * shape[3] + y) * shape[4] + x;
}

}  // namespace cupatch
