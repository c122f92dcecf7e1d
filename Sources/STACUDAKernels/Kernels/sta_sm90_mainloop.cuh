// Sliding Tile Attention, Hopper forward kernel: the pipeline and its two main loops. The producer (one
// thread of warpgroup 0) streams the query block and every K/V chunk the block attends through TMA into a
// ring of STAGES shared-memory stages; the consumers (warpgroups 1 and 2, 64 query rows each) wait for each
// chunk, compute S = Q·Kᵀ, mask, softmax and O += P·V, and hand the stage back. After sta_sm90_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_consumer.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

namespace sta {

/// mbarriers of the pipeline: the query block's, then "full" and "empty" per stage for K and V.
constexpr int PIPELINE_BARRIERS = 1 + 4 * STAGES;

/// Shared-memory addresses of one CTA: the query block, the K and V rings, and the barriers
/// ([0] Q full; [1 + s] K full; [1 + S + s] V full; [1 + 2S + s] K empty; [1 + 3S + s] V empty).
struct Pipeline {
    uint32_t q_smem;
    uint32_t k_smem;
    uint32_t v_smem;
    uint32_t bar0;

    __device__ __forceinline__ uint32_t q_full() const { return bar0; }
    __device__ __forceinline__ uint32_t k_full(int s) const { return bar0 + 8u * (1 + s); }
    __device__ __forceinline__ uint32_t v_full(int s) const { return bar0 + 8u * (1 + STAGES + s); }
    __device__ __forceinline__ uint32_t k_empty(int s) const { return bar0 + 8u * (1 + 2 * STAGES + s); }
    __device__ __forceinline__ uint32_t v_empty(int s) const { return bar0 + 8u * (1 + 3 * STAGES + s); }

    /// One thread: every barrier's arrival count (a full barrier completes on the producer's arrival and
    /// the transaction bytes, an empty one on every consumer warp's arrival).
    __device__ __forceinline__ void init() const {
        mbar_init(q_full(), 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(k_full(s), 1);
            mbar_init(v_full(s), 1);
            mbar_init(k_empty(s), EMPTY_ARRIVALS);
            mbar_init(v_empty(s), EMPTY_ARRIVALS);
        }
        fence_barrier_init();
    }
};

/// The producer's main loop (one thread): the query block (unless packed: the consumers gather it), then
/// every key chunk of `work` into the ring, each stage reused once the consumers have released it.
__device__ __forceinline__ void producer_mainloop(const Work& work, const Pipeline& pipe, const StaTensorMap* q_map,
                                                  const StaTensorMap* k_map, const StaTensorMap* v_map) {
    prefetch_tensor_map(q_map);
    prefetch_tensor_map(k_map);
    prefetch_tensor_map(v_map);
    if (!work.packed) {  // packed query rows are gathered by the consumers
        mbar_expect_tx(pipe.q_full(), Q_BYTES);
#pragma unroll
        for (int p = 0; p < PANELS; ++p)
#pragma unroll
            for (int r = 0; r < BLOCK_M; r += BOX_ROWS)
                tma_load_3d(pipe.q_smem + p * Q_PANEL_BYTES + r * 128, q_map, pipe.q_full(), p * 64, work.row0 + r,
                            work.bh);
    }
    // One chunk of K or V: PANELS × BLOCK_N / BOX_ROWS boxes of 64 columns × 64 rows.
    auto load_chunk = [&](uint32_t dst, const StaTensorMap* map, uint32_t bar, int key_row, int bh) {
#pragma unroll
        for (int p = 0; p < PANELS; ++p)
#pragma unroll
            for (int r = 0; r < BLOCK_N; r += BOX_ROWS)
                tma_load_3d(dst + p * KV_PANEL_BYTES + r * 128, map, bar, p * 64, key_row + r, bh);
    };
    ChunkCursor cursor;
    cursor.start(work);
    for (int i = 0; cursor.valid(work); ++i, cursor.advance(work)) {
        const int stage = i % STAGES;
        const uint32_t phase = (i / STAGES) & 1;
        const int key_row = cursor.chunk(work).key_row;
        mbar_wait(pipe.k_empty(stage), phase ^ 1);
        mbar_expect_tx(pipe.k_full(stage), KV_BYTES);
        load_chunk(pipe.k_smem + stage * KV_BYTES, k_map, pipe.k_full(stage), key_row, work.bh);
        mbar_wait(pipe.v_empty(stage), phase ^ 1);
        mbar_expect_tx(pipe.v_full(stage), KV_BYTES);
        load_chunk(pipe.v_smem + stage * KV_BYTES, v_map, pipe.v_full(stage), key_row, work.bh);
    }
}

/// Arrives `count` times on the mbarrier at `bar`.
__device__ __forceinline__ void mbar_arrive_count(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

/// A consumer warpgroup's main loop: its 64 rows (`q_rows` inside each Q panel) against every key chunk of
/// `work`; leaves the unnormalised O in `acc` and the thread's running maxima and partial sums of its two
/// rows in m0, m1, l0, l1 (unchanged when the block attends nothing).
///
/// A split block (split_block: at most 64 rows) is computed by both warpgroups on rows 0 ..< 64, warpgroup
/// w taking chunks w, w + 2, w + 4, ...; at the end warpgroup 1 hands its state to warpgroup 0 through the
/// (then idle) K ring and warpgroup 0 merges it, so warpgroup 0 holds the block's state and warpgroup 1
/// holds no row.
__device__ __forceinline__ void consumer_mainloop(const Work& work, const Pipeline& pipe, int cw, uint32_t q_rows,
                                                  float scale_log2, const uint16_t* __restrict__ q,
                                                  float (&acc)[HEAD_DIM / 2], float& m0, float& m1, float& l0,
                                                  float& l1) {
    const int lane = threadIdx.x % 32;
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int quad = lane % 4;
    const bool split = split_block(work);
    // A stage's empty barrier completes on one arrival per consumer warp (8); in a split block only the 4
    // warps of one warpgroup read a stage, and each arrives twice.
    const uint32_t arrivals = split ? 2u : 1u;
    auto release = [&](uint32_t bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive_count(bar, arrivals);
    };

    ChunkCursor cursor;
    cursor.start(work);
    if (!(work.any && cursor.valid(work))) return;
    float s[BLOCK_N / 2];
    uint32_t p[BLOCK_N / 4];
    float corr0, corr1;
    // The two consumer warpgroups take turns issuing their wgmmas (ping-pong on the turn barriers), so that
    // one's softmax runs while the other's products occupy the tensor cores. Warpgroup 0 goes first. Both
    // take as many turns: one per chunk and one for the last P·V; in a split block the warpgroup with fewer
    // chunks ends with empty turns.
    int turns = 0;
    int turns_total = 0;
    if (split) {
        const int chunks = count_chunks(work);
        turns_total = (chunks + 1) / 2 + 1;
    }
    const uint32_t my_turn = TURN_BARRIER + cw, other_turn = TURN_BARRIER + 1 - cw;
    if (cw == 1) named_barrier_arrive(TURN_BARRIER, CONSUMER_THREADS);
    auto turn_begin = [&]() {
        named_barrier_sync(my_turn, CONSUMER_THREADS);
        ++turns;
    };
    // Warpgroup 1's last turn does not hand the turn back (nobody takes it).
    auto turn_end = [&](bool last) {
        const bool final_turn = split ? turns == turns_total : last;
        if (!(final_turn && cw == 1)) named_barrier_arrive(other_turn, CONSUMER_THREADS);
    };
    // The Q rows this warpgroup's products read: its own, or rows 0 ..< 64 in a split block.
    const uint32_t mma_q = split ? pipe.q_smem : q_rows;
    if (PACK_QUERIES && work.packed) {
        // Gather this warpgroup's 64 rows into its Q rows (same 128-byte swizzle as TMA writes), then
        // make the generic-proxy stores visible to wgmma. A split block's rows are warpgroup 0's.
        constexpr int PIECES = HEAD_DIM / 8;  // 16-byte pieces per row
        if (!(split && cw == 1)) {
#pragma unroll
            for (int it = 0; it < 64 * PIECES / 128; ++it) {
                const int index = tid + it * 128;
                const int r = index / PIECES, piece = index % PIECES;
                const int local = cw * 64 + r;
                uint4 value = make_uint4(0u, 0u, 0u, 0u);
                if (local < work.rows) {
                    const long long row = static_cast<long long>(work.bh) * SEQ + work.row0 +
                                          packed_offset(work.pack_base + local, work.axes);
                    value = __ldg(reinterpret_cast<const uint4*>(q + row * HEAD_DIM) + piece);
                }
                const uint32_t to = q_rows + (piece / 8) * Q_PANEL_BYTES + r * 128 + (((piece % 8) ^ (r % 8)) * 16);
                asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(to), "r"(value.x), "r"(value.y),
                             "r"(value.z), "r"(value.w)
                             : "memory");
            }
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        }
        if (split) {
            named_barrier_sync(SPLIT_BARRIER, CONSUMER_THREADS);
        } else {
            named_barrier_sync(CONSUMER_BARRIER + cw, WARPGROUP_THREADS);
        }
    } else {
        mbar_wait(pipe.q_full(), 0);
    }

    // This warpgroup's chunks: global indices g = first, first + step, ... of the block's chunk sequence
    // (stage g % STAGES, phase (g / STAGES) & 1).
    const int step = split ? 2 : 1;
    int g = split ? cw : 0;
    if (g > 0) cursor.advance(work);
    if (cursor.valid(work)) {
        // First chunk: S, softmax.
        {
            const Chunk c = cursor.chunk(work);
            const ChunkMask mask = chunk_mask(c, quad);
            const int stage = g % STAGES;
            mbar_wait(pipe.k_full(stage), (g / STAGES) & 1);
            turn_begin();
            issue_qk(s, mma_q, pipe.k_smem + stage * KV_BYTES);
            turn_end(false);
            wgmma_wait<0>();
            fence_registers(s);
            release(pipe.k_empty(stage));
            mask_chunk(s, c, mask, quad);
            softmax_chunk(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
            pack_p(p, s);
        }
        int previous_g = g;
        for (int k = 0; k < step; ++k) cursor.advance(work);
        g += step;
        // Chunk i: S_i = Q·K_iᵀ and O += P_{i−1}·V_{i−1} in flight together; softmax of S_i meanwhile.
        for (; cursor.valid(work); g += step) {
            const int stage = g % STAGES;
            const int previous = previous_g % STAGES;
            const Chunk c = cursor.chunk(work);
            // The chunk's mask is read while the chunk's data and the turn are awaited.
            const ChunkMask mask = chunk_mask(c, quad);
            mbar_wait(pipe.k_full(stage), (g / STAGES) & 1);
            mbar_wait(pipe.v_full(previous), (previous_g / STAGES) & 1);
            turn_begin();
            issue_qk(s, mma_q, pipe.k_smem + stage * KV_BYTES);
            issue_pv(acc, p, pipe.v_smem + previous * KV_BYTES);
            turn_end(false);
            wgmma_wait<1>();
            fence_registers(s);
            release(pipe.k_empty(stage));
            mask_chunk(s, c, mask, quad);
            softmax_chunk(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
            wgmma_wait<0>();
            fence_registers(acc);
            fence_registers(p);
            release(pipe.v_empty(previous));
            // Once the running maxima settle, most chunks leave them unchanged: skip the multiplications
            // by 1 (a warp's rows decide together).
            if (__any_sync(0xffffffffu, corr0 != 1.f || corr1 != 1.f)) rescale(acc, corr0, corr1);
            pack_p(p, s);
            previous_g = g;
            for (int k = 0; k < step; ++k) cursor.advance(work);
        }
        {
            const int last = previous_g % STAGES;
            mbar_wait(pipe.v_full(last), (previous_g / STAGES) & 1);
            turn_begin();
            issue_pv(acc, p, pipe.v_smem + last * KV_BYTES);
            turn_end(true);
            wgmma_wait<0>();
            fence_registers(acc);
            release(pipe.v_empty(last));
        }
    }
    if (split) {
        // Empty turns of the warpgroup with fewer chunks (warpgroup 1 when the count is odd).
        while (turns < turns_total) {
            turn_begin();
            turn_end(false);
        }
        // Every chunk has been read and no copy is in flight: warpgroup 1's state goes through the K ring,
        // value k of thread t at float k · 128 + t (conflict-free).
        constexpr int VALUES = HEAD_DIM / 2;
        const uint32_t base = pipe.k_smem + 4u * tid;
        if (cw == 1) {
#pragma unroll
            for (int k = 0; k < VALUES; ++k)
                asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + 512u * k), "f"(acc[k]) : "memory");
            asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + 512u * VALUES), "f"(m0) : "memory");
            asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + 512u * (VALUES + 1)), "f"(m1) : "memory");
            asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + 512u * (VALUES + 2)), "f"(l0) : "memory");
            asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(base + 512u * (VALUES + 3)), "f"(l1) : "memory");
        }
        named_barrier_sync(SPLIT_BARRIER, CONSUMER_THREADS);
        if (cw == 0) {
            float other_m0, other_m1, other_l0, other_l1;
            asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(other_m0) : "r"(base + 512u * VALUES) : "memory");
            asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(other_m1) : "r"(base + 512u * (VALUES + 1)) : "memory");
            asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(other_l0) : "r"(base + 512u * (VALUES + 2)) : "memory");
            asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(other_l1) : "r"(base + 512u * (VALUES + 3)) : "memory");
            // Both states to the larger maximum (a row with no key in either keeps −∞ and adds nothing;
            // a NaN sum stays NaN).
            const float n0 = fmaxf(m0, other_m0), n1 = fmaxf(m1, other_m1);
            const float b0 = n0 == neg_inf() ? 0.f : n0;
            const float b1 = n1 == neg_inf() ? 0.f : n1;
            const float mine0 = ptx::exp2_approx(m0 - b0), theirs0 = ptx::exp2_approx(other_m0 - b0);
            const float mine1 = ptx::exp2_approx(m1 - b1), theirs1 = ptx::exp2_approx(other_m1 - b1);
#pragma unroll
            for (int k = 0; k < VALUES; ++k) {
                float other;
                asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(other) : "r"(base + 512u * k) : "memory");
                const bool row1 = (k % 4) >= 2;  // acc[4j], acc[4j + 1]: row 0; acc[4j + 2], acc[4j + 3]: row 1
                acc[k] = row1 ? fmaf(acc[k], mine1, other * theirs1) : fmaf(acc[k], mine0, other * theirs0);
            }
            l0 = fmaf(l0, mine0, other_l0 * theirs0);
            l1 = fmaf(l1, mine1, other_l1 * theirs1);
            m0 = n0;
            m1 = n1;
        }
    }
}

}  // namespace sta
