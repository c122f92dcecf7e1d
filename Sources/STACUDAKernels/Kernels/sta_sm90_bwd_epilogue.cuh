// Sliding Tile Attention, Hopper backward kernel: the epilogue. Each consumer warpgroup writes the dK
// (times the softmax scale) and dV rows of its 64 keys that belong to the block: the accumulated values
// for real keys, zeros for holes and padding text. Rows past the block's tile or text are another
// block's and are not written. After sta_sm90_bwd_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

__device__ __forceinline__ void epilogue(const KeyWork& work, int cw, const float (&dk)[HEAD_DIM / 2],
                                         const float (&dv)[HEAD_DIM / 2], float scale, uint16_t* __restrict__ dk_out,
                                         uint16_t* __restrict__ dv_out) {
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int lane = threadIdx.x % 32;
    const int warp = tid / 32;
    const int group = lane / 4, quad = lane % 4;
    const long long slice = static_cast<long long>(work.bh) * SEQ;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int r = cw * 64 + warp * 16 + group + 8 * half;
        if (r >= work.keys) continue;
        const bool real = key_row_real(work, r);
        const long long row = slice + work.key0 + r;
        uint16_t* k_row = dk_out + row * HEAD_DIM + 2 * quad;
        uint16_t* v_row = dv_out + row * HEAD_DIM + 2 * quad;
#pragma unroll
        for (int j = 0; j < HEAD_DIM / 8; ++j) {
            const uint32_t kw = real ? ptx::pack2(dk[4 * j + 2 * half] * scale, dk[4 * j + 2 * half + 1] * scale) : 0u;
            const uint32_t vw = real ? ptx::pack2(dv[4 * j + 2 * half], dv[4 * j + 2 * half + 1]) : 0u;
            *reinterpret_cast<uint32_t*>(k_row + 8 * j) = kw;
            *reinterpret_cast<uint32_t*>(v_row + 8 * j) = vw;
        }
    }
}

}  // namespace sta
