// SPDX-License-Identifier: BSD-3-Clause
#include <cuda_runtime.h>

#include "cuda_check.cuh"
#include "cupatch/device.h"

namespace cupatch {

int cuda_device_count() noexcept {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

int cuda_runtime_version() noexcept {
    int version = 0;
    if (cudaRuntimeGetVersion(&version) != cudaSuccess) {
        (void)cudaGetLastError();
        return CUDART_VERSION;
    }
    return version;
}

void cuda_use_device(int device) {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current == device) return;
    (void)cudaGetLastError();
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
}

void cuda_stream_wait(std::uintptr_t producer, std::uintptr_t consumer) {
    if (producer == consumer) return;
    cudaEvent_t event;
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    cudaError_t err = cudaEventRecord(event, reinterpret_cast<cudaStream_t>(producer));
    if (err == cudaSuccess) err = cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(consumer), event, 0);
    (void)cudaEventDestroy(event);  // released once the wait is satisfied
    check_cuda(err, "stream synchronisation with the producer stream");
}

}  // namespace cupatch
