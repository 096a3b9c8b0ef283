// SPDX-License-Identifier: BSD-3-Clause
// Normalisation of blended values by a tiling's weight-sum map.
//
// A tiling's tiles are every combination of its per-axis positions and the blend windows
// are separable, so the weight sum at a voxel is first[row] * rest[col]: the first spatial
// axis' sums times the product of the other axes' sums (python/cupatch/inference/weightmap.py
// builds both). Blended values are divided by it once, after every tile was stitched.
#pragma once

#include "cupatch/common.h"

namespace cupatch {

// value / (first * rest), each float32 operation rounded to nearest even (NumPy's and
// CuPy's float32 `first * rest` then `/`).
CUPATCH_HD float divide_by_weight_sum(float value, float first, float rest) { return div_rn(value, mul_rn(first, rest)); }

// Values: `outer` blocks (samples x channels) `outer_stride` floats apart, each `rows`
// rows `row_stride` floats apart of `row_len` contiguous floats; row r of every block is
// divided by first[r] * rest[0 .. row_len). In place; rows split across threads.
void divide_by_weight_map_cpu(float* values, index_t outer, index_t outer_stride, index_t rows, index_t row_stride,
                              index_t row_len, const float* first, const float* rest);

}  // namespace cupatch
