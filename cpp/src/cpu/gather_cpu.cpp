// SPDX-License-Identifier: BSD-3-Clause
// CPU gather: output rows are split across threads; each row is one contiguous run of
// the output, filled from the pad value and one strided (usually unit-stride) source run.
#include "cupatch/gather.h"
#include "parallel.h"

namespace cupatch {

namespace {

template <class T, class O>
void gather_rows(const GatherArgs& a, index_t begin, index_t end) {
    const index_t PX = a.patch[2];
    O* out = static_cast<O*>(a.out);
    RowIndex i = gather_row_index(a, begin);  // then stepped in C order: no divisions per row
    for (index_t row = begin; row < end; ++row) {
        const GatherRow r = gather_row_at(a, i);
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
        O* dst = out + row * PX;
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
                for (index_t qx = r.lo; qx < r.hi; ++qx)
                    from_float(gather_affine(to_float(src[qx * step]), scale, shift), dst[qx]);
            }
        }
        for (index_t qx = r.hi; qx < PX; ++qx) dst[qx] = pad;
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
