// SPDX-License-Identifier: BSD-3-Clause
// CUDA on the host: the subset of CUDA C++ and of the runtime API that cupatch's kernels
// (cpp/src/cuda/*.cu) use, so an emulated build (CUPATCH_CUDA=EMULATE) compiles those very
// files with the host C++ compiler and runs them on the CPU.
//
// Only an emulated build puts this directory on the include path; it then stands in for the
// toolkit's <cuda_runtime.h>. Host memory stands in for device memory, there is one device,
// launches run synchronously (so streams and events are ordered no-ops), and every CUDA
// thread of a block runs as its own fiber (or OS thread, see executor.h), with
// __syncthreads and __ballot_sync as the points where threads wait for each other.
#pragma once

#include <cstddef>
#include <cstdint>

// The kernels and the shared headers take their device branches (__CUDA_ARCH__), as nvcc's
// device pass does, so the emulated build runs the same source lines as the GPU.
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif
#define CUPATCH_CUDA_EMULATED 1
#define CUDART_VERSION 13000

#define __host__
#define __device__
#define __global__
// Always inlined, as on the device: the shared headers' CUPATCH_HD functions are compiled
// here with their __CUDA_ARCH__ branches and in the CPU kernels without, and no out-of-line
// copy of either may stand in for the other at link time.
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// One copy per block: the executor runs one block at a time per process (launches are
// serialised), so a function-local static is exactly the block's shared memory. All of them
// live in one section, which the executor fills with 0xFF bytes before every block, so a read
// before the first write sees garbage (NaN, -1) as on a GPU, not the previous block's values.
#define __shared__ static __attribute__((section("cupatch_emu_shared"), used))

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// The built-in index variables: set per CUDA thread by the executor before it runs.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace cupatch_emu {
// Scheduling points; `site` names the call (file:line) so mismatched barriers are reported.
void syncthreads(const char* site);
unsigned ballot_sync(unsigned mask, bool predicate, const char* site);
}  // namespace cupatch_emu

#define CUPATCH_EMU_STR2(x) #x
#define CUPATCH_EMU_STR(x) CUPATCH_EMU_STR2(x)
#define CUPATCH_EMU_SITE __FILE__ ":" CUPATCH_EMU_STR(__LINE__)
#define __syncthreads() ::cupatch_emu::syncthreads(CUPATCH_EMU_SITE)
#define __ballot_sync(mask, predicate) ::cupatch_emu::ballot_sync((mask), (predicate), CUPATCH_EMU_SITE)

// Arithmetic intrinsics. The host build never contracts float expressions into FMAs
// (-ffp-contract=off), so a plain float operation is the correctly rounded one.
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned __float_as_uint(float f) {
    unsigned u;
    __builtin_memcpy(&u, &f, sizeof u);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
}

// ---- runtime API subset ----------------------------------------------------------------
enum cudaError_t : int {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
};

struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

constexpr unsigned cudaEventDefault = 0x00;
constexpr unsigned cudaEventBlockingSync = 0x01;
constexpr unsigned cudaEventDisableTiming = 0x02;

const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);

namespace cupatch_emu {

// The type-erased body of one launch: runs the kernel for the current thread indices.
struct KernelBody {
    void (*call)(const void* closure);
    const void* closure;
};

// Runs every block of the grid and returns once all have finished. Sets the thread's last
// error (as a real launch does) for an invalid configuration, running nothing.
void launch(dim3 grid, dim3 block, std::size_t dynamic_shared_bytes, cudaStream_t stream, KernelBody body);

// Events alive now (created and not yet destroyed), so tests can check for leaks.
long live_events();

}  // namespace cupatch_emu
