// SPDX-License-Identifier: BSD-3-Clause
// The gather kernels writing float16, for every source dtype (see gather_cuda.cuh).
#include "gather_cuda.cuh"

namespace cupatch {

void gather_cuda_for(float16_t, const GatherArgs& a, std::uintptr_t stream) { gather_cuda_to<float16_t>(a, stream); }

}  // namespace cupatch
