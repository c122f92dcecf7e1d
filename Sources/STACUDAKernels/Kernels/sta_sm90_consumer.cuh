// Sliding Tile Attention, Hopper forward kernel: the consumer's pieces. S = Q·Kᵀ and O += P·V as wgmma
// groups, the masks of partial and hole chunks (a compile-time table in constant memory where it fits),
// the online softmax of one chunk in registers, and the rescaling of O. After sta_sm90_work.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

namespace sta {

// ---- Consumer pieces --------------------------------------------------------------------------------

// A chunk of N keys (BLOCK_N, or NARROW_N for a narrow chunk) uses the first N / 2 scores s and the
// first N / 4 words of P of the BLOCK_N-wide register arrays.

/// S = Q·Kᵀ for this warpgroup's 64 rows and one chunk of N keys (HEAD_DIM / 16 wgmmas, one group).
template <int N>
__device__ __forceinline__ void issue_qk(float (&s)[BLOCK_N / 2], uint32_t q_rows, uint32_t k_stage) {
    wgmma_fence();
    const uint64_t da0 = smem_descriptor(q_rows, 16, 1024), db0 = smem_descriptor(k_stage, 16, 1024);
#pragma unroll
    for (int k = 0; k < HEAD_DIM / 16; ++k) {
        const uint64_t da = da0 + (((k / 4) * Q_PANEL_BYTES + (k % 4) * 32) >> 4);
        const uint64_t db = db0 + (((k / 4) * KV_PANEL_BYTES + (k % 4) * 32) >> 4);
        if (k == 0) {
            wgmma_ss_m64k16<N, 0>(s, da, db);
        } else {
            wgmma_ss_m64k16<N, 1>(s, da, db);
        }
    }
    wgmma_commit();
}

/// O += P·V for one chunk of N keys (N / 16 wgmmas over 16 keys each, one group). V is N-major (D
/// contiguous).
template <int N>
__device__ __forceinline__ void issue_pv(float (&o)[HEAD_DIM / 2], const uint32_t (&p)[BLOCK_N / 4], uint32_t v_stage) {
    wgmma_fence();
    const uint64_t db0 = smem_descriptor(v_stage, KV_PANEL_BYTES, 1024);
#pragma unroll
    for (int k = 0; k < N / 16; ++k) {
        const uint64_t db = db0 + ((k * 2048) >> 4);
#if STA_HEAD_DIM == 128
        wgmma_rs_m64n128k16(o, p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3], db);
#else
        wgmma_rs_m64n64k16(o, p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3], db);
#endif
    }
    wgmma_commit();
}

// ---- Masks ----
// Thread t of a warp holds columns 8j + 2·quad + e (j < BLOCK_N / 8, e = 0, 1) of its two rows, quad =
// lane % 4: bit 2j + e of a mask word says that column is masked.

/// Rows of the mask table: one per padded-axis combination (8) and chunk of a tile, then, when there is
/// text, one per length 1 ... BLOCK_N of a text chunk (row 8 · CHUNKS_PER_TILE + BLOCK_N − length): the
/// last text chunk's length is a run-time value. Four words (quads) per row.
constexpr int TEXT_MASK_ROWS = TEXT_MASKS ? BLOCK_N : 0;
constexpr int MASK_WORDS = (8 * CHUNKS_PER_TILE + TEXT_MASK_ROWS) * 4;
constexpr bool USE_MASK_TABLE = (VIDEO_MASKS || TEXT_MASKS) && MASK_WORDS <= 2048;

struct MaskTable {
    uint64_t words[USE_MASK_TABLE ? MASK_WORDS : 1];
};

/// The mask word, for quad `quad`, of a chunk whose first `valid` columns are keys: chunk `part` of a tile
/// with padded axes `axes` (holes masked too), or a text chunk (`axes` 0).
__host__ __device__ constexpr uint64_t mask_word_ct(int axes, int part, int valid, int quad) {
    uint64_t word = 0;
    for (int j = 0; j < BLOCK_N / 8; ++j)
        for (int e = 0; e < 2; ++e) {
            const int column = 8 * j + 2 * quad + e;
            if (column >= valid || (axes != 0 && hole_under(part * BLOCK_N + column, axes)))
                word |= 1ull << (2 * j + e);
        }
    return word;
}

__host__ __device__ constexpr MaskTable make_mask_table() {
    MaskTable table{};
    if (USE_MASK_TABLE) {
        for (int axes = 0; axes < 8; ++axes)
            for (int part = 0; part < CHUNKS_PER_TILE; ++part) {
                const int valid = TILE_VOL - part * BLOCK_N < BLOCK_N ? TILE_VOL - part * BLOCK_N : BLOCK_N;
                for (int quad = 0; quad < 4; ++quad)
                    table.words[(axes * CHUNKS_PER_TILE + part) * 4 + quad] = mask_word_ct(axes, part, valid, quad);
            }
        for (int tail = 0; tail < TEXT_MASK_ROWS; ++tail)
            for (int quad = 0; quad < 4; ++quad)
                table.words[(8 * CHUNKS_PER_TILE + tail) * 4 + quad] = mask_word_ct(0, 0, BLOCK_N - tail, quad);
    }
    return table;
}

__constant__ MaskTable mask_table = make_mask_table();

/// Sets masked scores of a chunk of N keys to −∞: columns at or past its valid keys, and holes.
/// Column of s[4j + e] and s[4j + 2 + e] (e = 0, 1): 8j + 2·quad + e.
template <int N>
__device__ __forceinline__ void mask_chunk(float (&s)[BLOCK_N / 2], ChunkInfo c, int quad) {
    if (!c.masked()) return;
    if constexpr (USE_MASK_TABLE) {
        // Text rows are indexed by the chunk's length (no text: the part, a row never read).
        const int row = c.text() ? 8 * CHUNKS_PER_TILE + (TEXT_MASKS ? BLOCK_N - c.valid() : c.part())
                                 : c.axes() * CHUNKS_PER_TILE + c.part();
        const uint64_t word = mask_table.words[row * 4 + quad];
        if (!__any_sync(0xffffffffu, word != 0)) return;
#pragma unroll
        for (int j = 0; j < N / 8; ++j) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                if ((word >> (2 * j + e)) & 1) {
                    s[4 * j + e] = neg_inf();
                    s[4 * j + 2 + e] = neg_inf();
                }
            }
        }
        return;
    }
    const int valid = c.valid(), axes = c.axes(), offset = c.part() * BLOCK_N;
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int column = 8 * j + 2 * quad + e;
            bool masked = column >= valid;
            if constexpr (HAS_HOLES) masked |= axes != 0 && hole_under(offset + column, axes);
            if (masked) {
                s[4 * j + e] = neg_inf();
                s[4 * j + 2 + e] = neg_inf();
            }
        }
    }
}

/// Softmax of a block's first chunk (N keys) for the thread's two rows: the running maxima (log2 domain,
/// scaled) start at the chunk's row maxima, s becomes the unnormalised probabilities and l0, l1 the
/// thread's partial row sums.
template <int N>
__device__ __forceinline__ void softmax_first_chunk(float (&s)[BLOCK_N / 2], float scale_log2, float& m0, float& m1,
                                                    float& l0, float& l1) {
    float x0 = neg_inf(), x1 = neg_inf();
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
        x0 = fmaxf(x0, fmaxf(s[4 * j], s[4 * j + 1]));
        x1 = fmaxf(x1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    m0 = x0 * scale_log2;
    m1 = x1 * scale_log2;
    // A row with no unmasked key keeps −∞; subtract 0 then so that exp2 gives 0, not NaN.
    const float b0 = m0 == neg_inf() ? 0.f : m0;
    const float b1 = m1 == neg_inf() ? 0.f : m1;
    l0 = 0.f;
    l1 = 0.f;
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
        s[4 * j] = ptx::exp2_approx(fmaf(s[4 * j], scale_log2, -b0));
        s[4 * j + 1] = ptx::exp2_approx(fmaf(s[4 * j + 1], scale_log2, -b0));
        s[4 * j + 2] = ptx::exp2_approx(fmaf(s[4 * j + 2], scale_log2, -b1));
        s[4 * j + 3] = ptx::exp2_approx(fmaf(s[4 * j + 3], scale_log2, -b1));
        l0 += s[4 * j] + s[4 * j + 1];
        l1 += s[4 * j + 2] + s[4 * j + 3];
    }
}

/// A per-thread row sum of a chunk past which the running maxima move (2⁸: every exponential of the chunk
/// below it, far inside fp32 and the 16-bit P).
constexpr float SOFTMAX_SLACK_SUM = 256.f;

/// A chunk's exponentials come in groups of EXP_GROUP per thread: each group's FFMAs wait for the row sums
/// of the groups before (their base plus r − r, which is the base for every finite r), so the warp issues
/// no MUFU.EX2 between one group's last exponential and the next group's first. While a warp streams
/// exponentials, the other consumer warpgroup's wgmmas on the same scheduler wait to issue
/// (`scripts/issue_contention.cu`); the pauses let them through. Groups of 24 (four in a 192-key chunk)
/// measured −0.8 % on hunyuan 3×3×3, −1.7 % on wan and −4.8 % dense on the H200, 16 no better
/// (`benchmarks/h200/2026-12-02-exp-groups`). A sum that overflowed makes the rest of its row's chunk NaN,
/// and the row goes to the exact-rows pass as before.
constexpr int EXP_GROUP = 24;
static_assert(EXP_GROUP % 4 == 0, "whole column pairs of both rows");

/// Online softmax of a chunk of N keys after the first, without the chunk's row maxima (a third fewer instructions
/// than a softmax that finds them): the exponentials are taken against the running maxima as they stand,
/// and the thread's row sums updated. A maximum moves only when a thread's row sum passes
/// SOFTMAX_SLACK_SUM (the row's scores rose by about 8 in log2 units or more): then it moves by log2 of
/// the row's chunk sum, which brings every exponential of the chunk to at most 1. Returns whether any row
/// of the warp moved; corr0, corr1 are then the factors O must be rescaled by (1 for rows that did not).
/// An exponential that overflows (a score 128 or more above the running maximum) or a chunk sum past 2¹²⁵
/// (`moved_base`) makes the row's sum, output and LSE NaN, and the exact-rows pass redoes the row in
/// float64; NaN scores give NaN as before.
template <int N>
__device__ __forceinline__ bool softmax_chunk(float (&s)[BLOCK_N / 2], float scale_log2, float& m0, float& m1,
                                                   float& l0, float& l1, float& corr0, float& corr1) {
    // A row with no finite score so far keeps −∞; its exponentials are taken against 0.
    const float b0 = m0 == neg_inf() ? 0.f : m0;
    const float b1 = m1 == neg_inf() ? 0.f : m1;
    float r0 = 0.f, r1 = 0.f;
    float g0 = b0, g1 = b1;  // the bases as the current group sees them
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
        if (j > 0 && j % (EXP_GROUP / 4) == 0) {
            g0 = b0 + (r0 - r0);
            g1 = b1 + (r1 - r1);
        }
        s[4 * j] = ptx::exp2_approx(fmaf(s[4 * j], scale_log2, -g0));
        s[4 * j + 1] = ptx::exp2_approx(fmaf(s[4 * j + 1], scale_log2, -g0));
        s[4 * j + 2] = ptx::exp2_approx(fmaf(s[4 * j + 2], scale_log2, -g1));
        s[4 * j + 3] = ptx::exp2_approx(fmaf(s[4 * j + 3], scale_log2, -g1));
        r0 += s[4 * j] + s[4 * j + 1];
        r1 += s[4 * j + 2] + s[4 * j + 3];
    }
    corr0 = 1.f;
    corr1 = 1.f;
    const bool moved = __any_sync(0xffffffffu, r0 > SOFTMAX_SLACK_SUM || r1 > SOFTMAX_SLACK_SUM);
    if (moved) {
        // Whole-row sums of the chunk (a row's four threads get the same value), then the new maxima.
        float x0 = r0 + __shfl_xor_sync(0xffffffffu, r0, 1);
        float x1 = r1 + __shfl_xor_sync(0xffffffffu, r1, 1);
        x0 += __shfl_xor_sync(0xffffffffu, x0, 2);
        x1 += __shfl_xor_sync(0xffffffffu, x1, 2);
        float f0 = 1.f, f1 = 1.f;
        if (x0 > SOFTMAX_SLACK_SUM) {
            const float n0 = moved_base(b0, x0);
            f0 = ptx::exp2_approx(b0 - n0);
            corr0 = ptx::exp2_approx(m0 - n0);
            m0 = n0;
        }
        if (x1 > SOFTMAX_SLACK_SUM) {
            const float n1 = moved_base(b1, x1);
            f1 = ptx::exp2_approx(b1 - n1);
            corr1 = ptx::exp2_approx(m1 - n1);
            m1 = n1;
        }
#pragma unroll
        for (int j = 0; j < N / 8; ++j) {
            s[4 * j] *= f0;
            s[4 * j + 1] *= f0;
            s[4 * j + 2] *= f1;
            s[4 * j + 3] *= f1;
        }
        r0 *= f0;
        r1 *= f1;
    }
    l0 = fmaf(l0, corr0, r0);
    l1 = fmaf(l1, corr1, r1);
    return moved;
}

__device__ __forceinline__ void rescale(float (&o)[HEAD_DIM / 2], float corr0, float corr1) {
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; ++j) {
        o[4 * j] *= corr0;
        o[4 * j + 1] *= corr0;
        o[4 * j + 2] *= corr1;
        o[4 * j + 3] *= corr1;
    }
}

/// The wgmma A fragments of P for a chunk of N keys (k-step k uses p[4k ..< 4k + 4]).
template <int N>
__device__ __forceinline__ void pack_p(uint32_t (&p)[BLOCK_N / 4], const float (&s)[BLOCK_N / 2]) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) p[i] = ptx::pack2(s[2 * i], s[2 * i + 1]);
}

/// Whether query `row` (sequence index; `text_query` says which part) attends anything, with `text_valid`
/// valid text positions in its batch row.
__device__ __forceinline__ bool query_row_valid(int row, bool text_query, int text_valid) {
    if (text_query) return row - VIDEO_TOKENS < text_valid;
    if constexpr (HAS_HOLES) {
        const int tile = row / TILE_VOL;
        const int axes = boundary_axes(tile);
        return axes == 0 || !hole_under(row - tile * TILE_VOL, axes);
    }
    return true;
}

}  // namespace sta
