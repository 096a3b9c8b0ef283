// SPDX-License-Identifier: BSD-3-Clause
// The gather kernels writing float32, for every source dtype (see gather_cuda.cuh).
#include "gather_cuda.cuh"

namespace cupatch {

void gather_cuda_for(float, const GatherArgs& a, std::uintptr_t stream) { gather_cuda_to<float>(a, stream); }

}  // namespace cupatch
