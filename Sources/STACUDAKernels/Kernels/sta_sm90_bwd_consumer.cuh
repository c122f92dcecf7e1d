// Sliding Tile Attention, Hopper backward kernel: the consumer's pieces. The five products of one query
// chunk as wgmma groups (Sᵀ = K Qᵀ, dPᵀ = V dOᵀ, dV += Pᵀ dO, dK += dSᵀ Q, dQ = dS K), the recomputation
// of Pᵀ and dSᵀ in registers, and the shared-memory stores of dSᵀ (the dQ product's A operand) and of the
// chunk's dQ contribution (the bulk reduction's source). After sta_sm90_bwd_work.cuh.
//
// Accumulator layout of an m64nN wgmma (thread t of warpgroup, warp w = t / 32, g = lane / 4, quad =
// lane % 4): d[4j + e] is (row 16w + g, column 8j + 2·quad + e), d[4j + 2 + e] is row 16w + g + 8, e = 0, 1.
// Here the rows are this warpgroup's 64 keys and the columns the chunk's 64 queries (the transposed
// problem), so each thread holds two key rows and 16 query columns.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

// ---- Products ---------------------------------------------------------------------------------------

/// Sᵀ (or dPᵀ) = A · Bᵀ over the head dimension: A is this warpgroup's 64 rows of K (or V) in the key
/// block, B the chunk's 64 rows of Q (or dO); both K-major with the 128-byte swizzle. One group.
__device__ __forceinline__ void issue_transposed_scores(float (&s)[CHUNK / 2], uint32_t key_rows, uint32_t chunk) {
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < HEAD_DIM / 16; ++k) {
        const uint64_t da = smem_descriptor(key_rows + (k / 4) * KV_PANEL_BYTES + (k % 4) * 32, 16, 1024);
        const uint64_t db = smem_descriptor(chunk + (k / 4) * CHUNK_PANEL_BYTES + (k % 4) * 32, 16, 1024);
        if (k == 0) {
            wgmma_ss_m64n64k16<0>(s, da, db);
        } else {
            wgmma_ss_m64n64k16<1>(s, da, db);
        }
    }
    wgmma_commit();
}

/// acc += Xᵀ · C for this warpgroup's 64 key rows: Xᵀ (Pᵀ or dSᵀ) from registers, C the chunk's dO (or Q),
/// N-major (the head dimension contiguous). One group of CHUNK / 16 wgmmas.
__device__ __forceinline__ void issue_accumulate(float (&acc)[HEAD_DIM / 2], const uint32_t (&x)[CHUNK / 4],
                                                 uint32_t chunk) {
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < CHUNK / 16; ++k) {
        const uint64_t db = smem_descriptor(chunk + k * 2048, CHUNK_PANEL_BYTES, 1024);
#if STA_HEAD_DIM == 128
        wgmma_rs_m64n128k16(acc, x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3], db);
#else
        wgmma_rs_m64n64k16(acc, x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3], db);
#endif
    }
    wgmma_commit();
}

/// The chunk's dQ (unscaled) for this warpgroup's half of the head dimension: dS · K[:, half] over all
/// BLOCK_N keys, A = dSᵀ in shared memory (key rows of 64 query columns: M-major), B = K (N-major). One
/// group of BLOCK_N / 16 wgmmas; overwrites `dq`.
__device__ __forceinline__ void issue_dq(float (&dq)[HEAD_DIM / 4], uint32_t ds_smem, uint32_t k_smem, int cw) {
    // This warpgroup's columns: panel cw (head dim 128) or the cw-th 32 columns of the one panel (64).
    const uint32_t columns = HEAD_DIM == 128 ? cw * KV_PANEL_BYTES : cw * 64;
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < BLOCK_N / 16; ++k) {
        const uint64_t da = smem_descriptor(ds_smem + k * 2048, CHUNK_PANEL_BYTES, 1024);
        const uint64_t db = smem_descriptor(k_smem + columns + k * 2048, KV_PANEL_BYTES, 1024);
#if STA_HEAD_DIM == 128
        if (k == 0) {
            wgmma_ss_tt_m64n64k16<0>(dq, da, db);
        } else {
            wgmma_ss_tt_m64n64k16<1>(dq, da, db);
        }
#else
        if (k == 0) {
            wgmma_ss_tt_m64n32k16<0>(dq, da, db);
        } else {
            wgmma_ss_tt_m64n32k16<1>(dq, da, db);
        }
#endif
    }
    wgmma_commit();
}

// ---- Recomputation ----------------------------------------------------------------------------------

/// How many of a thread's CHUNK / 4 values of the chunk's LSE2 and Δ are read from shared memory ahead of
/// the wgmma waits that precede their use, so that the loads run while the products do instead of delaying
/// the first exponentials and the first dSᵀ values: all of both (STA_BWD_STATS_AHEAD 2), or the first half
/// of the LSE2 (1; the rest is read where it is used, its latency behind the first half's work), which
/// keeps 8 to 16 registers fewer live across the waits: some layouts (holes, 2D tiles) spill with all.
static_assert(STA_BWD_STATS_AHEAD == 1 || STA_BWD_STATS_AHEAD == 2, "STA_BWD_STATS_AHEAD must be 1 or 2");
constexpr int LSE2_AHEAD = STA_BWD_STATS_AHEAD == 2 ? CHUNK / 4 : CHUNK / 8;
constexpr int DELTA_AHEAD = STA_BWD_STATS_AHEAD == 2 ? CHUNK / 4 : 0;

/// Whether a chunk's statistics are stored grouped for 16-byte loads (all of both read ahead) or in query
/// order (half of the LSE ahead: those layouts have no registers to spare for the aligned register quads of
/// 16-byte loads, which ptxas also forms from two adjacent 8-byte ones).
constexpr bool STATS_GROUPED = STA_BWD_STATS_AHEAD == 2;

/// Where query column `column` (0 ..< CHUNK) of a chunk statistic lies in its CHUNK floats. The thread with
/// quad q reads columns 8j + 2q and 8j + 2q + 1 (pair j = 0 ..< CHUNK / 8); grouped, pairs 2v and 2v + 1 of
/// quad q are the four floats at 16v + 4q, one 16-byte load for both, the four quads of a warp one
/// conflict-free 64-byte wavefront. Both orders give statistic_slot(8j + 2q) = statistic_slot(8j) +
/// statistic_slot(2q): a per-thread base plus a constant per pair.
__host__ __device__ __forceinline__ int statistic_slot(int column) {
    if (!STATS_GROUPED) return column;
    const int j = column / 8, quad = (column % 8) / 2;
    return (j / 2) * 16 + quad * 4 + (j % 2) * 2 + column % 2;
}

/// The first of the two adjacent query columns whose values lie at slots 2·lane and 2·lane + 1 (the inverse
/// of statistic_slot), so that the statistics warp stores as it loads: one 8-byte store per lane.
__host__ __device__ __forceinline__ int statistic_column(int lane) {
    return STATS_GROUPED ? 16 * (lane >> 3) + 8 * (lane & 1) + 2 * ((lane >> 1) & 3) : 2 * lane;
}

/// Reads the first `Ahead` (a multiple of 4) of this thread's CHUNK / 4 values of a chunk statistic (pair
/// j in x[2j], x[2j + 1]) from `at`: the chunk's LSE2 (`stats`) or its Δ (`stats` + CHUNK floats).
template <int Ahead>
__device__ __forceinline__ void load_ahead(float (&x)[CHUNK / 4], uint32_t at, int quad) {
    static_assert(Ahead % 4 == 0, "whole 16-byte groups");
    const uint32_t mine = at + statistic_slot(2 * quad) * 4;  // pair j at + statistic_slot(8j) · 4
#pragma unroll
    for (int v = 0; v < Ahead / 4; ++v) {
        if constexpr (STATS_GROUPED) {
            asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                         : "=f"(x[4 * v]), "=f"(x[4 * v + 1]), "=f"(x[4 * v + 2]), "=f"(x[4 * v + 3])
                         : "r"(mine + statistic_slot(16 * v) * 4));
        } else {
#pragma unroll
            for (int j = 2 * v; j < 2 * v + 2; ++j)
                asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                             : "=f"(x[2 * j]), "=f"(x[2 * j + 1])
                             : "r"(mine + statistic_slot(8 * j) * 4));
        }
    }
}

/// Pair j of a chunk statistic (the LSE2 for `First` 0, Δ for `First` CHUNK): from `ahead` when load_ahead<Ahead>
/// read it, else from `stats` now.
template <int Ahead, int First>
__device__ __forceinline__ void statistic_pair(const float (&ahead)[CHUNK / 4], uint32_t stats, int quad, int j,
                                               float& v0, float& v1) {
    if (j < Ahead / 2) {
        v0 = ahead[2 * j];
        v1 = ahead[2 * j + 1];
    } else {
        asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                     : "=f"(v0), "=f"(v1)
                     : "r"(stats + (First + statistic_slot(2 * quad) + statistic_slot(8 * j)) * 4));
    }
}

/// Pᵀ = exp2(Sᵀ · scale · log2 e − LSE2) in place. LSE2 of a query the chunk does not hold (past its
/// tile, past the valid text, or a row that attends nothing) is +∞, so its column is 0; `bias0` and
/// `bias1` are 0 for real key rows and −∞ for the others (holes, rows past the tile or the valid text),
/// so their rows are 0. `ahead` holds the values load_ahead<LSE2_AHEAD> read.
__device__ __forceinline__ void recompute_p(float (&s)[CHUNK / 2], const float (&ahead)[CHUNK / 4], uint32_t stats,
                                            int quad, float scale_log2, float bias0, float bias1) {
#pragma unroll
    for (int j = 0; j < CHUNK / 8; ++j) {
        float l0, l1;
        statistic_pair<LSE2_AHEAD, 0>(ahead, stats, quad, j, l0, l1);
        s[4 * j] = ptx::exp2_approx(fmaf(s[4 * j], scale_log2, bias0) - l0);
        s[4 * j + 1] = ptx::exp2_approx(fmaf(s[4 * j + 1], scale_log2, bias0) - l1);
        s[4 * j + 2] = ptx::exp2_approx(fmaf(s[4 * j + 2], scale_log2, bias1) - l0);
        s[4 * j + 3] = ptx::exp2_approx(fmaf(s[4 * j + 3], scale_log2, bias1) - l1);
    }
}

/// dSᵀ = Pᵀ ∘ (dPᵀ − Δ) in place in `dp` (masked entries: P = 0, so 0). `ahead` holds the values
/// load_ahead<DELTA_AHEAD> read.
__device__ __forceinline__ void recompute_ds(float (&dp)[CHUNK / 2], const float (&p)[CHUNK / 2],
                                             const float (&ahead)[CHUNK / 4], uint32_t stats, int quad) {
#pragma unroll
    for (int j = 0; j < CHUNK / 8; ++j) {
        float d0, d1;
        statistic_pair<DELTA_AHEAD, CHUNK>(ahead, stats, quad, j, d0, d1);
        dp[4 * j] = p[4 * j] * (dp[4 * j] - d0);
        dp[4 * j + 1] = p[4 * j + 1] * (dp[4 * j + 1] - d1);
        dp[4 * j + 2] = p[4 * j + 2] * (dp[4 * j + 2] - d0);
        dp[4 * j + 3] = p[4 * j + 3] * (dp[4 * j + 3] - d1);
    }
}

/// The wgmma A fragments of a 64 × CHUNK register tile, rounded to the storage type (k-step k uses
/// x[4k ..< 4k + 4]).
__device__ __forceinline__ void pack_fragments(uint32_t (&x)[CHUNK / 4], const float (&s)[CHUNK / 2]) {
#pragma unroll
    for (int i = 0; i < CHUNK / 4; ++i) x[i] = ptx::pack2(s[2 * i], s[2 * i + 1]);
}

// ---- Shared-memory stores ---------------------------------------------------------------------------

/// Writes this thread's dSᵀ fragments to the dSᵀ tile: key row `key_row0` (and + 8) of BLOCK_N rows of
/// CHUNK 16-bit query columns, 128 bytes per row, 128-byte swizzle (as TMA writes; the dQ product reads
/// it as an M-major A operand).
__device__ __forceinline__ void store_ds(uint32_t ds_smem, const uint32_t (&ds)[CHUNK / 4], int key_row0, int quad) {
    const int swizzle = key_row0 % 8;  // key_row0 + 8 has the same
#pragma unroll
    for (int j = 0; j < CHUNK / 8; ++j) {
        const uint32_t at = ds_smem + key_row0 * 128 + ((j ^ swizzle) * 16) + quad * 4;
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(at), "r"(ds[2 * j]) : "memory");
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(at + 8 * 128), "r"(ds[2 * j + 1]) : "memory");
    }
}

/// Where column `column` of the float32 dQ row with flat index `row` (batch · heads · S + position) lies
/// inside the row, in floats: 16-byte groups are permuted by XOR with 2 · (row mod 8), so that the
/// fragment stores of eight consecutive rows hit distinct banks. The workspace holds dQ in this order;
/// the conversion kernel undoes it.
__host__ __device__ __forceinline__ int dq_permuted_column(long long row, int column) {
    return (((column >> 2) ^ (static_cast<int>(row & 7) << 1)) << 2) | (column & 3);
}

/// Writes this warpgroup's dQ contribution (query rows 16w + g and + 8 of the chunk, its half of the head
/// dimension) into the chunk's dQ buffer: CHUNK rows of HEAD_DIM floats in the workspace's order.
/// `flat_row0` is the flat index of the chunk's first row.
__device__ __forceinline__ void store_dq(uint32_t dq_smem, const float (&dq)[HEAD_DIM / 4], long long flat_row0,
                                         int cw, int warp, int group, int quad) {
    const int r0 = warp * 16 + group;
    const int column0 = cw * (HEAD_DIM / 2) + 2 * quad;
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 16; ++j) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int r = r0 + 8 * half;
            const int column = dq_permuted_column(flat_row0 + r, column0 + 8 * j);
            const uint32_t at = dq_smem + (r * HEAD_DIM + column) * 4;
            asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(at), "f"(dq[4 * j + 2 * half]),
                         "f"(dq[4 * j + 2 * half + 1])
                         : "memory");
        }
    }
}

}  // namespace sta
