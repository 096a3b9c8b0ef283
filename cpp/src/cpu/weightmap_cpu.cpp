// SPDX-License-Identifier: BSD-3-Clause
// CPU division by a weight-sum map: rows of all blocks split across threads.
#include "cupatch/weightmap.h"
#include "parallel.h"
#include "row_clones.h"

namespace cupatch {

namespace {
CUPATCH_ROW_CLONES void divide_row(float* __restrict v, float first, const float* __restrict rest, index_t n) {
    for (index_t i = 0; i < n; ++i) v[i] = divide_by_weight_sum(v[i], first, rest[i]);
}
}  // namespace

void divide_by_weight_map_cpu(float* values, index_t outer, index_t outer_stride, index_t rows, index_t row_stride,
                              index_t row_len, const float* first, const float* rest) {
    parallel_for(outer * rows, row_len, [&](index_t begin, index_t end) {
        for (index_t item = begin; item < end; ++item) {
            const index_t block = item / rows, row = item % rows;
            divide_row(values + block * outer_stride + row * row_stride, first[row], rest, row_len);
        }
    });
}

}  // namespace cupatch
