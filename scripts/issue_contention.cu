// Does a warpgroup that sits in a wgmma issue (the tensor cores' queue full) hold up the other warpgroup's
// arithmetic? A research probe for the Hopper forward (docs/PERFORMANCE.md, "Where the forward's time goes"):
// its chunk period is the tensor work of both consumer warpgroups plus one softmax, with or without turns
// between them, as if one warpgroup's softmax could not run while the other issues.
//
// One CTA of two warpgroups on one multiprocessor (warp w and warp w + 4 share a scheduler). After a named
// barrier, warpgroup 0 issues one group of wgmmas (a forward chunk's: 8 m64n192k16 with both operands in
// shared memory, then 12 m64n128k16 with A from registers; or none, or the first G of them) and waits for
// it; warpgroup 1 meanwhile runs a softmax-like stream on 96 registers per thread (FFMA, MUFU.EX2, FADD per
// value, ROUNDS times, optionally with a `nanosleep 0` YIELDS times per round). Each side reads %clock64
// around its part; the last of five runs is printed. The first reading (`benchmarks/h200/2026-12-02-issue-
// contention`): warpgroup 0's few instructions, and its wgmma issue, wait until the arithmetic beside them
// is nearly done, so a warp with a long stream of ready instructions keeps its scheduler; the yields test
// whether a short sleep hands the scheduler over.
//
// Build and run on an H200 (nvcc of the CUDA toolkit, the project's PTX wrappers):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I Sources/STACUDAKernels/Kernels \
//     -DSTA_HEAD_DIM=128 -DSTA_BF16=1 -DSTA_CANVAS_T=1 -DSTA_CANVAS_H=1 -DSTA_CANVAS_W=64 -DSTA_TILE_T=1 \
//     -DSTA_TILE_H=1 -DSTA_TILE_W=64 -DSTA_GRID_T=1 -DSTA_GRID_H=1 -DSTA_GRID_W=1 -DSTA_TEXT_COUNT=0 \
//     -o /tmp/issue_contention scripts/issue_contention.cu && /tmp/issue_contention
// Output: one line per configuration: the wgmmas issued, rounds, yields, warpgroup 0's issue and run cycles,
// warpgroup 1's arithmetic cycles.

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

/// Where warpgroup 0's wgmma fence (`wgmma.fence`, SASS WARPGROUP.ARRIVE) goes: after the first clock read
/// (as in the kernels), before the barrier that starts both warpgroups (the wgmmas then follow without one),
/// or nowhere (only with Count 0).
enum Fence { FENCE_TIMED = 0, FENCE_BEFORE = 1, FENCE_NONE = 2 };

/// Warpgroup 0: the first `Count` wgmmas of a forward chunk (8 Q·Kᵀ m64n192k16 SS, then 12 P·V m64n128k16
/// RS), one group; writes its issue and run cycles.
template <int Count, int FenceAt>
__device__ void issue_chunk(uint32_t smem, long long* out, float* sink) {
    float s[96], o[64];
#pragma unroll
    for (int i = 0; i < 96; ++i) s[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] = 0.f;
    const uint64_t da = smem_descriptor(smem, 16, 1024);
    const uint64_t db = smem_descriptor(smem + 16384, 16, 1024);
    const uint32_t zero = 0u;
    long long issue = 0, run = 0;
    for (int trial = 0; trial < 5; ++trial) {
        if (FenceAt == FENCE_BEFORE) wgmma_fence();
        named_barrier_sync(1, 256);
        const long long t0 = clock_now();
        if (FenceAt == FENCE_TIMED) wgmma_fence();
#pragma unroll
        for (int k = 0; k < Count; ++k) {
            if (k < 8) {
                wgmma_ss_m64n192k16<1>(s, da, db);
            } else {
                wgmma_rs_m64n128k16(o, zero, zero, zero, zero, db);
            }
        }
        if (Count > 0) wgmma_commit();
        const long long t1 = clock_now();
        wgmma_wait<0>();
        fence_registers(s);
        fence_registers(o);
        const long long t2 = clock_now();
        issue = t1 - t0;
        run = t2 - t0;
    }
    if (threadIdx.x == 0) {
        out[0] = issue;
        out[1] = run;
    }
    float x = 0.f;
#pragma unroll
    for (int i = 0; i < 96; ++i) x += s[i];
#pragma unroll
    for (int i = 0; i < 64; ++i) x += o[i];
    if (x != 0.f) sink[threadIdx.x] = x;  // never true (zeros): keeps the products alive
}

/// Warpgroup 1: `Rounds` passes of a chunk softmax's arithmetic over 96 values (with Exponentials false, the
/// MUFU.EX2 left out: FFMA and FADD only), with a `nanosleep 0` after every 96 / Yields values (none for
/// Yields 0); with Group g > 0, the exponentials come in groups of g values, each group's FFMAs depending
/// on the running sums of the groups before (their bias plus (r − r)), so that the warp issues no MUFU
/// between one group's last exponential and the next group's first; writes its cycles.
template <int Rounds, int Yields, bool Exponentials, int Group = 0>
__device__ void arithmetic(long long* out, float* sink, float seed) {
    float v[96];
#pragma unroll
    for (int i = 0; i < 96; ++i) v[i] = seed * static_cast<float>(i + 1);
    float r0 = 0.f, r1 = 0.f;
    long long cycles = 0;
    for (int trial = 0; trial < 5; ++trial) {
        named_barrier_sync(1, 256);
        const long long t0 = clock_now();
#pragma unroll
        for (int round = 0; round < Rounds; ++round) {
            float bias = -0.5f;
#pragma unroll
            for (int j = 0; j < 24; ++j) {
                if (Group > 0 && j > 0 && j % (Group / 4) == 0) {
                    const float chain = r0 + r1;
                    bias = -0.5f + (chain - chain);
                }
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float x = fmaf(v[4 * j + e], 0.125f, bias);
                    v[4 * j + e] = Exponentials ? ptx::exp2_approx(x) : x;
                }
                r0 += v[4 * j] + v[4 * j + 1];
                r1 += v[4 * j + 2] + v[4 * j + 3];
                if (Yields > 0 && (j + 1) % (24 / (Yields > 0 ? Yields : 1)) == 0)
                    asm volatile("nanosleep.u32 0;\n" ::: "memory");
            }
        }
        fence_registers(v);
        asm volatile("" : "+f"(r0), "+f"(r1)::"memory");
        cycles = clock_now() - t0;
    }
    if (threadIdx.x == 128) out[2] = cycles;
    if (r0 + r1 == 12345.f) sink[threadIdx.x] = r0;  // keeps the arithmetic alive
}

template <int Count, int Rounds, int Yields, int FenceAt, bool Exponentials, int Group>
__global__ void __launch_bounds__(256, 1) probe(long long* out, float* sink, float seed) {
    __shared__ __align__(1024) unsigned char operands[16384 + 49152];
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(operands)) / 4; i += blockDim.x)
        reinterpret_cast<uint32_t*>(operands)[i] = 0u;
    fence_proxy_async_shared();
    __syncthreads();
    if (threadIdx.x < 128) {
        issue_chunk<Count, FenceAt>(ptx::shared_address(operands), out, sink);
    } else {
        arithmetic<Rounds, Yields, Exponentials, Group>(out, sink, seed);
    }
}

#ifdef __CUDACC_RTC__
template __global__ void probe<20, 2, 0, FENCE_TIMED, true, 16>(long long*, float*, float);
#else
template <int Count, int Rounds, int Yields = 0, int FenceAt = FENCE_TIMED, bool Exponentials = true, int Group = 0>
void run(long long* out, float* sink) {
    long long host[3] = {0, 0, 0};
    cudaMemset(out, 0, sizeof(host));
    probe<Count, Rounds, Yields, FenceAt, Exponentials, Group><<<1, 256>>>(out, sink, 0.001f);
    const cudaError_t status = cudaDeviceSynchronize();
    if (status != cudaSuccess) {
        std::printf("wgmmas %2d rounds %d yields %d fence %d exp %d group %2d: %s\n", Count, Rounds, Yields, FenceAt,
                    Exponentials, Group, cudaGetErrorString(status));
        return;
    }
    cudaMemcpy(host, out, sizeof(host), cudaMemcpyDeviceToHost);
    std::printf("wgmmas %2d rounds %d yields %d fence %d exp %d group %2d: warpgroup 0 issue %5lld run %5lld  "
                "warpgroup 1 arithmetic %5lld\n", Count, Rounds, Yields, FenceAt, Exponentials, Group, host[0], host[1],
                host[2]);
}

int main() {
    long long* out = nullptr;
    float* sink = nullptr;
    cudaMalloc(&out, 3 * sizeof(long long));
    cudaMalloc(&sink, 256 * sizeof(float));
    run<0, 1>(out, sink);
    run<0, 2>(out, sink);
    run<0, 4>(out, sink);
    run<4, 2>(out, sink);
    run<8, 2>(out, sink);
    run<12, 2>(out, sink);
    run<20, 1>(out, sink);
    run<20, 2>(out, sink);
    run<20, 4>(out, sink);
    // The same with the arithmetic yielding its scheduler (nanosleep 0) 1, 2, 4 or 8 times per round.
    run<0, 2, 1>(out, sink);
    run<0, 2, 2>(out, sink);
    run<0, 2, 4>(out, sink);
    run<0, 2, 8>(out, sink);
    run<20, 2, 1>(out, sink);
    run<20, 2, 2>(out, sink);
    run<20, 2, 4>(out, sink);
    run<20, 2, 8>(out, sink);
    run<0, 4, 4>(out, sink);
    run<20, 4, 4>(out, sink);
    // Which of warpgroup 0's instructions waits: the fence (timed, before the barrier, none) beside the
    // arithmetic with and without exponentials.
    run<0, 2, 0, FENCE_NONE>(out, sink);
    run<0, 2, 0, FENCE_TIMED, false>(out, sink);
    run<0, 2, 0, FENCE_NONE, false>(out, sink);
    run<20, 2, 0, FENCE_BEFORE>(out, sink);
    run<20, 4, 0, FENCE_BEFORE>(out, sink);
    run<20, 2, 0, FENCE_TIMED, false>(out, sink);
    run<20, 2, 0, FENCE_BEFORE, false>(out, sink);
    // Exponentials in chained groups of 8, 12, 16, 24 or 48: alone, and beside a chunk's 20 wgmmas.
    run<0, 2, 0, FENCE_TIMED, true, 8>(out, sink);
    run<0, 2, 0, FENCE_TIMED, true, 12>(out, sink);
    run<0, 2, 0, FENCE_TIMED, true, 16>(out, sink);
    run<0, 2, 0, FENCE_TIMED, true, 24>(out, sink);
    run<0, 2, 0, FENCE_TIMED, true, 48>(out, sink);
    run<20, 1, 0, FENCE_TIMED, true, 8>(out, sink);
    run<20, 1, 0, FENCE_TIMED, true, 12>(out, sink);
    run<20, 1, 0, FENCE_TIMED, true, 16>(out, sink);
    run<20, 1, 0, FENCE_TIMED, true, 24>(out, sink);
    run<20, 1, 0, FENCE_TIMED, true, 48>(out, sink);
    run<20, 2, 0, FENCE_TIMED, true, 8>(out, sink);
    run<20, 2, 0, FENCE_TIMED, true, 12>(out, sink);
    run<20, 2, 0, FENCE_TIMED, true, 16>(out, sink);
    run<20, 2, 0, FENCE_TIMED, true, 24>(out, sink);
    run<20, 2, 0, FENCE_TIMED, true, 48>(out, sink);
    run<20, 0, 0>(out, sink);
    return 0;
}
#endif
