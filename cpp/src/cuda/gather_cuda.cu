// SPDX-License-Identifier: BSD-3-Clause
// gather_patches on the GPU: picks the translation unit of the output dtype (the kernel is in
// gather_cuda.cuh; the instantiations are split by output dtype so they compile in parallel).
#include "gather_cuda.cuh"

namespace cupatch {

void gather_cuda(const GatherArgs& a, std::uintptr_t stream) {
    dispatch_output_dtype(a.out_dtype, [&](auto out_tag) { gather_cuda_for(out_tag, a, stream); });
}

}  // namespace cupatch
