// SPDX-License-Identifier: BSD-3-Clause
// CPU gather: output rows are split across threads; each row is one contiguous run of
// the output, filled from the pad value and one strided (usually unit-stride) source run.
#include "cupatch/gather.h"
#include "parallel.h"
#include "prefetch.h"
#include "row_clones.h"

namespace cupatch {

namespace {

// Rows are mapped kBatch at a time and their source runs prefetched before any of them is
// copied: short rows from scattered patches are latency-bound otherwise (the next row's
// address is only known after the current row's bookkeeping).
constexpr int kBatch = 8;
constexpr index_t kMaxPrefetchLines = 32;

template <class T>
CUPATCH_ALWAYS_INLINE void prefetch_source_run(const GatherRow& r) {
    if (r.hi <= r.lo) return;
    const T* src = static_cast<const T*>(r.data) + r.base;
    if (r.step == 1) {
        prefetch_run(src + r.lo, (r.hi - r.lo) * index_t(sizeof(T)), kMaxPrefetchLines);
    } else {  // strided (quarter turns): one line per element, up to the cap
        for (index_t qx = r.lo; qx < r.hi && qx - r.lo < kMaxPrefetchLines; ++qx) prefetch_line(src + qx * r.step);
    }
}

template <class T, class O>
CUPATCH_ALWAYS_INLINE void copy_row(const GatherRow& r, O* dst, index_t width) {
    O pad;
    from_float(gather_affine(0.0f, r.scale, r.shift), pad);
    for (index_t qx = 0; qx < r.lo; ++qx) dst[qx] = pad;
    if (r.hi > r.lo) {
        const T* src = static_cast<const T*>(r.data) + r.base;
        const float scale = r.scale, shift = r.shift;
        if (r.step == 1) {  // the common case: a contiguous source run, vectorisable
            for (index_t qx = r.lo; qx < r.hi; ++qx) from_float(gather_affine(to_float(src[qx]), scale, shift), dst[qx]);
        } else {
            const index_t step = r.step;
            for (index_t qx = r.lo; qx < r.hi; ++qx) from_float(gather_affine(to_float(src[qx * step]), scale, shift), dst[qx]);
        }
    }
    for (index_t qx = r.hi; qx < width; ++qx) dst[qx] = pad;
}

// The whole row loop is cloned for AVX2 (row_clones.h), with its per-row helpers inlined
// into it: short rows spend as much time in bookkeeping as in copying.
template <class T, class O>
CUPATCH_ROW_CLONES void gather_rows(const GatherArgs& a, index_t begin, index_t end) {
    const index_t width = a.patch[2];
    O* out = static_cast<O*>(a.out);
    RowIndex i = gather_row_index(a, begin);  // then stepped in C order: no divisions per row
    auto next_index = [&]() {
        if (++i.qy == a.patch[1]) {
            i.qy = 0;
            if (++i.qz == a.patch[0]) {
                i.qz = 0;
                if (++i.k == a.n_channels) {
                    i.k = 0;
                    ++i.b;
                }
            }
        }
    };
    // Software pipeline: batch k + 1 is mapped and prefetched before batch k is copied.
    GatherRow rows[2][kBatch];
    index_t mapped = begin;  // rows mapped so far
    // Planes (b, k, qz) are mapped once; their rows only add row_step.
    GatherPlane plane = gather_plane(a, i.b, i.k, i.qz);
    auto map_batch = [&](GatherRow* batch) {
        const int n = static_cast<int>(end - mapped < kBatch ? end - mapped : kBatch);
        for (int j = 0; j < n; ++j) {
            batch[j] = plane_row(plane, i.qy);
            prefetch_source_run<T>(batch[j]);
            next_index();
            if (i.qy == 0 && mapped + j + 1 < end) plane = gather_plane(a, i.b, i.k, i.qz);
        }
        mapped += n;
        return n;
    };
    int current = 0;
    int n_current = map_batch(rows[0]);
    index_t first = begin;
    while (n_current > 0) {
        const int n_next = mapped < end ? map_batch(rows[current ^ 1]) : 0;
        for (int j = 0; j < n_current; ++j) copy_row<T, O>(rows[current][j], out + (first + j) * width, width);
        first += n_current;
        n_current = n_next;
        current ^= 1;
    }
}

}  // namespace

void gather_cpu(const GatherArgs& a) {
    dispatch_dtype(a.source_dtype, [&](auto source_tag) {
        using T = decltype(source_tag);
        dispatch_output_dtype(a.out_dtype, [&](auto out_tag) {
            using O = decltype(out_tag);
            parallel_for(gather_row_count(a), a.patch[2],
                         [&](index_t begin, index_t end) { gather_rows<T, O>(a, begin, end); });
        });
    });
}

}  // namespace cupatch
