// Sliding Tile Attention, Hopper forward kernel: the epilogue. Each consumer warpgroup normalises its 64
// rows of O, writes their log-sum-exp, stages O through its (now free) rows of the query block for 16-byte
// stores, and, in the last block of a packed tile, writes O = 0 / LSE = −∞ to the tile's hole rows.
// After sta_sm90_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_consumer.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

namespace sta {

__device__ __forceinline__ void epilogue(const Work& work, int cw, uint32_t q_rows, const float (&acc)[HEAD_DIM / 2],
                                         float m0, float m1, float l0, float l1, uint16_t* __restrict__ o,
                                         float* __restrict__ lse) {
    const int lane = threadIdx.x % 32;
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int warp = tid / 32;
    const int group = lane / 4, quad = lane % 4;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const int local0 = cw * 64 + warp * 16 + group;  // row inside the block
    const int local1 = local0 + 8;
    // Sequence row of block row `local` (packed blocks: the local-th real row from pack_base).
    auto row_of = [&](int local) {
        return PACK_QUERIES && work.packed ? work.row0 + packed_offset(work.pack_base + local, work.axes)
                                           : work.row0 + local;
    };
    // A row attends something when its sum is positive, or NaN: NaN or ±inf in its q, or in the k or v of
    // a key it attends, makes it NaN, and that NaN must reach O and LSE (as in PyTorch), not a 0.
    const bool valid0 = local0 < work.rows && !(l0 <= 0.f) &&
                        (work.packed || query_row_valid(row_of(local0), work.text_query, work.text_valid));
    const bool valid1 = local1 < work.rows && !(l1 <= 0.f) &&
                        (work.packed || query_row_valid(row_of(local1), work.text_query, work.text_valid));
    const float inv0 = valid0 ? 1.f / l0 : 0.f;
    const float inv1 = valid1 ? 1.f / l1 : 0.f;
    const long long slice = static_cast<long long>(work.bh) * SEQ;
    // A row with a non-finite output element (the unnormalised P·V sum overflowed) gets LSE = NaN, which
    // the exact-rows pass after this kernel looks for (docs/SEMANTICS.md).
    bool over0 = false, over1 = false;
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; ++j) {
        const float a = acc[4 * j] * inv0, b = acc[4 * j + 1] * inv0;
        const float c = acc[4 * j + 2] * inv1, d = acc[4 * j + 3] * inv1;
        over0 = over0 || !(a - a == 0.f) || !(b - b == 0.f);
        over1 = over1 || !(c - c == 0.f) || !(d - d == 0.f);
    }
    over0 = __shfl_xor_sync(0xffffffffu, over0, 1) || over0;
    over0 = __shfl_xor_sync(0xffffffffu, over0, 2) || over0;
    over1 = __shfl_xor_sync(0xffffffffu, over1, 1) || over1;
    over1 = __shfl_xor_sync(0xffffffffu, over1, 2) || over1;
    const float nan = __int_as_float(0x7fc00000);
    if (quad == 0) {
        if (local0 < work.rows)
            lse[slice + row_of(local0)] = !valid0 ? neg_inf() : over0 ? nan : (m0 + ptx::log2_approx(l0)) * LN2;
        if (local1 < work.rows)
            lse[slice + row_of(local1)] = !valid1 ? neg_inf() : over1 ? nan : (m1 + ptx::log2_approx(l1)) * LN2;
    }
    // Q smem of these rows is free: every wgmma that read it has completed. Same 128-byte swizzle.
    const int r0 = warp * 16 + group;  // row inside this warpgroup's 64
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; ++j) {
        const uint32_t chunk_base = q_rows + (j / 8) * Q_PANEL_BYTES + ((j % 8) ^ group) * 16 + quad * 4;
        const uint32_t w0 = ptx::pack2(valid0 ? acc[4 * j] * inv0 : 0.f, valid0 ? acc[4 * j + 1] * inv0 : 0.f);
        const uint32_t w1 = ptx::pack2(valid1 ? acc[4 * j + 2] * inv1 : 0.f, valid1 ? acc[4 * j + 3] * inv1 : 0.f);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(chunk_base + r0 * 128), "r"(w0) : "memory");
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(chunk_base + (r0 + 8) * 128), "r"(w1) : "memory");
    }
    named_barrier_sync(CONSUMER_BARRIER + cw, WARPGROUP_THREADS);
    constexpr int CHUNKS_PER_ROW = HEAD_DIM / 8;  // 16-byte pieces
#pragma unroll
    for (int it = 0; it < 64 * CHUNKS_PER_ROW / 128; ++it) {
        const int index = tid + it * 128;
        const int r = index / CHUNKS_PER_ROW;
        const int piece = index % CHUNKS_PER_ROW;
        const int local = cw * 64 + r;
        if (local < work.rows) {
            const uint4 v = load_shared_v4(q_rows + swizzled_piece(r, piece, Q_PANEL_BYTES));
            uint16_t* to = o + (slice + row_of(local)) * HEAD_DIM + piece * 8;
            asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(to), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                         : "memory");
        }
    }

    // ---- Hole rows of a packed tile: O = 0, LSE = −∞ (the tile's last unit; both consumer warpgroups) ----
    if (PACK_QUERIES && work.writes_holes) {
        const int consumer = (cw * 128 + tid);  // 0 ..< 256
        const int tile_row0 = work.row0;        // packed units keep row0 at the tile's first row
        for (int offset = consumer; offset < TILE_VOL; offset += 256) {
            if (!hole_under(offset, work.axes)) continue;
            const long long row = slice + tile_row0 + offset;
            lse[row] = neg_inf();
            uint4* to = reinterpret_cast<uint4*>(o + row * HEAD_DIM);
#pragma unroll
            for (int piece = 0; piece < HEAD_DIM / 8; ++piece) to[piece] = make_uint4(0u, 0u, 0u, 0u);
        }
    }
}

}  // namespace sta
