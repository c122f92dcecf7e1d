// Sliding Tile Attention, Hopper backward kernel: the epilogue. Each consumer warpgroup writes the dK
// (times the softmax scale) and dV rows of its 64 keys that belong to the block: the accumulated values
// for real keys, zeros for holes and padding text. Rows past the block's tile or text are another
// block's and are not written. After sta_sm90_bwd_consumer.cuh.
//
// Staged (2026-12-02): 64 four-byte stores per thread, each warp instruction over eight rows, took ~7,300
// cycles per CTA on the H200; staged through shared memory the rows leave whole, 16 bytes per thread.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

/// Writes the warpgroup's rows: the dK (times `scale`) and dV fragments go into the warpgroup's rows of
/// the K and V buffers (free once the last DQ_READY barrier is behind both warpgroups: no product reads K
/// or V any more), 128-byte swizzled as TMA wrote them, so that the stores of a warp's eight rows hit
/// distinct banks; then each row leaves in 16-byte pieces, a warp writing two whole rows at a time.
__device__ __forceinline__ void epilogue(const KeyWork& work, uint32_t k_smem, uint32_t v_smem, int cw,
                                         const float (&dk)[HEAD_DIM / 2], const float (&dv)[HEAD_DIM / 2], float scale,
                                         uint16_t* __restrict__ dk_out, uint16_t* __restrict__ dv_out) {
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int lane = threadIdx.x % 32;
    const int warp = tid / 32;
    const int group = lane / 4, quad = lane % 4;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int r = cw * 64 + warp * 16 + group + 8 * half;
        const bool real = key_row_real(work, r);
#pragma unroll
        for (int j = 0; j < HEAD_DIM / 8; ++j) {
            const uint32_t kw = real ? ptx::pack2(dk[4 * j + 2 * half] * scale, dk[4 * j + 2 * half + 1] * scale) : 0u;
            const uint32_t vw = real ? ptx::pack2(dv[4 * j + 2 * half], dv[4 * j + 2 * half + 1]) : 0u;
            const uint32_t at = swizzled_piece(r, j, KV_PANEL_BYTES) + quad * 4;
            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(k_smem + at), "r"(kw) : "memory");
            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(v_smem + at), "r"(vw) : "memory");
        }
    }
    named_barrier_sync(EPILOGUE_BARRIER, CONSUMER_THREADS);
    constexpr int PIECES = HEAD_DIM / 8;  // 16-byte pieces per row
    const long long first_row = static_cast<long long>(work.bh) * SEQ + work.key0;
#pragma unroll
    for (int i = tid; i < 64 * PIECES; i += WARPGROUP_THREADS) {
        const int r = cw * 64 + i / PIECES, piece = i % PIECES;
        // Rows past the block's tile or text are another block's. A guard, not a `break`: with the break
        // ptxas moved descriptor arithmetic into the main loop (76 instructions per chunk, +2.3 %).
        if (r >= work.keys) continue;
        const uint32_t at = swizzled_piece(r, piece, KV_PANEL_BYTES);
        reinterpret_cast<uint4*>(dk_out + (first_row + r) * HEAD_DIM)[piece] = load_shared_v4(k_smem + at);
        reinterpret_cast<uint4*>(dv_out + (first_row + r) * HEAD_DIM)[piece] = load_shared_v4(v_smem + at);
    }
}

/// Zeros the block's dK and dV rows with every thread of the CTA (a block without a real key).
__device__ __forceinline__ void zero_key_rows(const KeyWork& work, uint16_t* __restrict__ dk_out,
                                              uint16_t* __restrict__ dv_out) {
    constexpr int PIECES = HEAD_DIM / 8;  // 16-byte pieces per row
    const long long first = (static_cast<long long>(work.bh) * SEQ + work.key0) * PIECES;
    for (int index = threadIdx.x; index < work.keys * PIECES; index += THREADS) {
        reinterpret_cast<uint4*>(dk_out)[first + index] = make_uint4(0u, 0u, 0u, 0u);
        reinterpret_cast<uint4*>(dv_out)[first + index] = make_uint4(0u, 0u, 0u, 0u);
    }
}

}  // namespace sta
