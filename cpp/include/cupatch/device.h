// SPDX-License-Identifier: BSD-3-Clause
// CUDA runtime helpers callable from host-compiled C++ (implemented in cpp/src/cuda/, only
// linked when the build has CUDA; the bindings guard their use with CUPATCH_WITH_CUDA).
#pragma once

#include <cstdint>

namespace cupatch {

// Number of usable CUDA devices; 0 on any CUDA error (no driver, no device...), with the
// error cleared so later CUDA calls are unaffected.
int cuda_device_count() noexcept;

// CUDA runtime version the module was linked against (e.g. 13000), 0 if unknown.
int cuda_runtime_version() noexcept;

// Make `device` current for this thread (no-op when it already is). Throws CudaError.
void cuda_use_device(int device);

// CUDA Array Interface v3 consumer duty without blocking the host: make `consumer` wait
// for the work queued so far on `producer` (record an event, then wait on it).
void cuda_stream_wait(std::uintptr_t producer, std::uintptr_t consumer);

}  // namespace cupatch
