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
    /// the transaction bytes, an empty one on the arrival of every warp of the `consumers` warpgroups
    /// that compute).
    __device__ __forceinline__ void init(int consumers) const {
        mbar_init(q_full(), 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(k_full(s), 1);
            mbar_init(v_full(s), 1);
            mbar_init(k_empty(s), CONSUMER_WARPS * consumers);
            mbar_init(v_empty(s), CONSUMER_WARPS * consumers);
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

/// A consumer warpgroup's main loop: its 64 rows (`q_rows` inside each Q panel) against every key chunk of
/// `work`; leaves the unnormalised O in `acc` and the thread's running maxima and partial sums of its two
/// rows in m0, m1, l0, l1 (unchanged when the block attends nothing, or holds no row of this warpgroup).
__device__ __forceinline__ void consumer_mainloop(const Work& work, const Pipeline& pipe, int cw, uint32_t q_rows,
                                                  float scale_log2, const uint16_t* __restrict__ q,
                                                  float (&acc)[HEAD_DIM / 2], float& m0, float& m1, float& l0,
                                                  float& l1) {
    const int lane = threadIdx.x % 32;
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int quad = lane % 4;
    auto release = [&](uint32_t bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };
    __shared__ float2 order_scratch[8];  // one word pair per consumer warp, written and never read
    const uint32_t scratch = ptx::shared_address(&order_scratch[(threadIdx.x / 32) % 8]);

    ChunkCursor cursor;
    cursor.start(work);
    if (!(work.any && cursor.valid(work)) || cw >= computing_consumers(work)) return;
    float s[BLOCK_N / 2];
    uint32_t p[BLOCK_N / 4];
    if (PACK_QUERIES && work.packed) {
        // Gather this warpgroup's 64 rows into its Q rows (same 128-byte swizzle as TMA writes), then
        // make the generic-proxy stores visible to wgmma.
        constexpr int PIECES = HEAD_DIM / 8;  // 16-byte pieces per row
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
        named_barrier_sync(CONSUMER_BARRIER + cw, WARPGROUP_THREADS);
    } else {
        mbar_wait(pipe.q_full(), 0);
    }

    // Chunk 0: S, softmax.
    {
        const Chunk c = cursor.chunk(work);
        mbar_wait(pipe.k_full(0), 0);
        issue_qk(s, q_rows, pipe.k_smem);
        wgmma_wait<0>();
        fence_registers(s);
        release(pipe.k_empty(0));
        mask_chunk(s, c, quad);
        softmax_first_chunk(s, scale_log2, m0, m1, l0, l1);
        pack_p(p, s);
    }
    cursor.advance(work);
    // Chunk i: S_i = Q·K_iᵀ and O += P_{i−1}·V_{i−1} in flight together; softmax of S_i meanwhile.
    int i = 1;
    for (; cursor.valid(work); ++i, cursor.advance(work)) {
        const int stage = i % STAGES;
        const int previous = (i - 1) % STAGES;
        const Chunk c = cursor.chunk(work);
        mbar_wait(pipe.k_full(stage), (i / STAGES) & 1);
        mbar_wait(pipe.v_full(previous), ((i - 1) / STAGES) & 1);
        issue_qk(s, q_rows, pipe.k_smem + stage * KV_BYTES);
        issue_pv(acc, p, pipe.v_smem + previous * KV_BYTES);
        wgmma_wait<1>();
        fence_registers(s);
        release(pipe.k_empty(stage));
        mask_chunk(s, c, quad);
        float corr0, corr1;
        const bool moved = softmax_chunk(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
        order_before_wait(scratch, l0, l1);  // the softmax overlaps P·V (l0, l1 depend on every score)
        wgmma_wait<0>();
        fence_registers(acc);
        fence_registers(p);
        release(pipe.v_empty(previous));
        if (moved) rescale(acc, corr0, corr1);  // most chunks leave the running maxima where they are
        pack_p(p, s);
    }
    {
        const int last = (i - 1) % STAGES;
        mbar_wait(pipe.v_full(last), ((i - 1) / STAGES) & 1);
        issue_pv(acc, p, pipe.v_smem + last * KV_BYTES);
        wgmma_wait<0>();
        fence_registers(acc);
        release(pipe.v_empty(last));
    }
}

}  // namespace sta
