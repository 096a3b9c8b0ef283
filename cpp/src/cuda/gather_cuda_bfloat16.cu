// SPDX-License-Identifier: BSD-3-Clause
// The gather kernels writing bfloat16, for every source dtype (see gather_cuda.cuh).
#include "gather_cuda.cuh"

namespace cupatch {

void gather_cuda_for(bfloat16_t, const GatherArgs& a, std::uintptr_t stream) { gather_cuda_to<bfloat16_t>(a, stream); }

}  // namespace cupatch
