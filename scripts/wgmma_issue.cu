// How long does a warpgroup take to *issue* a group of wgmmas, against how long the group takes to *run*?
// A research probe for the Hopper kernels (docs/PERFORMANCE.md, "Hopper forward v6"): if issuing N
// wgmmas blocks the warps until most of them have run (a wgmma issue queue that fills), a warpgroup that
// issues Q·Kᵀ and P·V together cannot start its softmax until its own P·V is nearly done.
//
// One CTA on one multiprocessor; each of its W warpgroups (W = 1 or 2, the second one issuing at the same
// time) issues one group of N wgmmas m64n128k16 (both operands in shared memory, SS, or A from registers,
// RS, as the forward's P·V), reading %clock64 before the first issue, after the commit and after the wait.
// The operands are zeros (a wgmma's time does not depend on its values). Every configuration runs five
// times in one launch; the last run's cycles are printed.
//
// Build and run on an H200 (nvcc of the CUDA toolkit, the project's PTX wrappers):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I Sources/STACUDAKernels/Kernels \
//     -DSTA_HEAD_DIM=128 -DSTA_BF16=1 -DSTA_CANVAS_T=1 -DSTA_CANVAS_H=1 -DSTA_CANVAS_W=64 -DSTA_TILE_T=1 \
//     -DSTA_TILE_H=1 -DSTA_TILE_W=64 -DSTA_GRID_T=1 -DSTA_GRID_H=1 -DSTA_GRID_W=1 -DSTA_TEXT_COUNT=0 \
//     -o /tmp/wgmma_issue scripts/wgmma_issue.cu && /tmp/wgmma_issue
// Output: one line per configuration, "form N W: issue CYCLES run CYCLES" per warpgroup.

#include "sta_sm90_ptx.cuh"

#ifndef __CUDACC_RTC__  // NVRTC (a compile check without a GPU) sees the device code only
#include <cstdio>
#endif

using namespace sta;

__device__ __forceinline__ long long clock_now() {
    long long t;
    asm volatile("mov.u64 %0, %%clock64;\n" : "=l"(t)::"memory");
    return t;
}

/// This warpgroup's issue and run cycles of a group of N wgmmas (the last of five runs), written to out[0], out[1].
template <int N, bool RegisterA>
__device__ void measure(uint32_t smem, long long* out, float* sink) {
    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    const uint64_t da = smem_descriptor(smem, 16, 1024);
    const uint64_t db = smem_descriptor(smem + 8192, 16, 1024);
    const uint32_t zero = 0u;
    long long issue = 0, run = 0;
    for (int trial = 0; trial < 5; ++trial) {
        named_barrier_sync(1, blockDim.x);  // every warpgroup starts together
        const long long t0 = clock_now();
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < N; ++k) {
            if constexpr (RegisterA) {
                wgmma_rs_m64n128k16(acc, zero, zero, zero, zero, db);
            } else {
                wgmma_ss_m64n128k16<1>(acc, da, db);
            }
        }
        wgmma_commit();
        const long long t1 = clock_now();
        wgmma_wait<0>();
        fence_registers(acc);
        const long long t2 = clock_now();
        issue = t1 - t0;
        run = t2 - t0;
    }
    if (threadIdx.x % 128 == 0) {
        out[0] = issue;
        out[1] = run;
    }
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) s += acc[i];
    if (s != 0.f) sink[threadIdx.x] = s;  // never true (zeros): keeps the products alive
}

template <int N, bool RegisterA>
__global__ void __launch_bounds__(256, 1) probe(long long* out, float* sink) {
    __shared__ __align__(1024) unsigned char operands[8192 + 16384];
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(operands)) / 4; i += blockDim.x)
        reinterpret_cast<uint32_t*>(operands)[i] = 0u;
    fence_proxy_async_shared();
    __syncthreads();
    const int warpgroup = threadIdx.x / 128;
    measure<N, RegisterA>(ptx::shared_address(operands), out + 2 * warpgroup, sink);
}

#ifdef __CUDACC_RTC__
template __global__ void probe<20, false>(long long*, float*);
template __global__ void probe<20, true>(long long*, float*);
#else
template <int N, bool RegisterA>
void run(long long* out, float* sink) {
    for (int warpgroups = 1; warpgroups <= 2; ++warpgroups) {
        long long host[4] = {0, 0, 0, 0};
        cudaMemset(out, 0, sizeof(host));
        probe<N, RegisterA><<<1, 128 * warpgroups>>>(out, sink);
        const cudaError_t status = cudaDeviceSynchronize();
        if (status != cudaSuccess) {
            std::printf("%s N=%d W=%d: %s\n", RegisterA ? "RS" : "SS", N, warpgroups, cudaGetErrorString(status));
            return;
        }
        cudaMemcpy(host, out, sizeof(host), cudaMemcpyDeviceToHost);
        std::printf("%s m64n128k16 N=%2d W=%d:", RegisterA ? "RS" : "SS", N, warpgroups);
        for (int w = 0; w < warpgroups; ++w)
            std::printf("  wg%d issue %5lld run %5lld", w, host[2 * w], host[2 * w + 1]);
        std::printf("\n");
    }
}

template <bool RegisterA>
void sweep(long long* out, float* sink) {
    run<1, RegisterA>(out, sink);
    run<2, RegisterA>(out, sink);
    run<4, RegisterA>(out, sink);
    run<6, RegisterA>(out, sink);
    run<8, RegisterA>(out, sink);
    run<10, RegisterA>(out, sink);
    run<12, RegisterA>(out, sink);
    run<16, RegisterA>(out, sink);
    run<20, RegisterA>(out, sink);
    run<24, RegisterA>(out, sink);
}

int main() {
    long long* out = nullptr;
    float* sink = nullptr;
    cudaMalloc(&out, 4 * sizeof(long long));
    cudaMalloc(&sink, 256 * sizeof(float));
    sweep<false>(out, sink);
    sweep<true>(out, sink);
    return 0;
}
#endif
