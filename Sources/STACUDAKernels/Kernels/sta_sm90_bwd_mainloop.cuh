// Sliding Tile Attention, Hopper backward kernel: the pipeline and its main loops. The producer
// warpgroup loads the CTA's key block of K and V once, then streams the query chunks that attend it: one
// thread issues the TMA copies of Q and dO into a ring of STAGES stages, one warp copies the chunk's LSE2
// and Δ (bounded by the chunk's valid rows) next to them. The consumers (two warpgroups of 64 key rows)
// run the five products per chunk, keep dK and dV in registers, and hand the chunk's dQ contribution to a
// bulk reduction into the float32 workspace. After sta_sm90_bwd_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_consumer.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

/// mbarriers: the key block's, then per stage "Q full" (TMA bytes and the statistics warp), "dO full"
/// and "empty" (every consumer warp).
constexpr int PIPELINE_BARRIERS = 1 + 3 * STAGES;

/// Shared-memory addresses of one CTA and its barriers.
struct Pipeline {
    uint32_t base;  // 1024-byte aligned
    uint32_t bar0;

    __device__ __forceinline__ uint32_t k_smem() const { return base + K_OFFSET; }
    __device__ __forceinline__ uint32_t v_smem() const { return base + V_OFFSET; }
    __device__ __forceinline__ uint32_t q_stage(int s) const { return base + Q_OFFSET + s * CHUNK_BYTES; }
    __device__ __forceinline__ uint32_t do_stage(int s) const { return base + DO_OFFSET + s * CHUNK_BYTES; }
    __device__ __forceinline__ uint32_t ds_smem() const { return base + DS_OFFSET; }
    __device__ __forceinline__ uint32_t dq_smem() const { return base + DQ_OFFSET; }
    __device__ __forceinline__ uint32_t stats(int s) const { return base + STATS_OFFSET + s * STATS_BYTES; }

    __device__ __forceinline__ uint32_t kv_full() const { return bar0; }
    __device__ __forceinline__ uint32_t q_full(int s) const { return bar0 + 8u * (1 + s); }
    __device__ __forceinline__ uint32_t do_full(int s) const { return bar0 + 8u * (1 + STAGES + s); }
    __device__ __forceinline__ uint32_t empty(int s) const { return bar0 + 8u * (1 + 2 * STAGES + s); }

    /// One thread: every barrier's arrival count.
    __device__ __forceinline__ void init() const {
        mbar_init(kv_full(), 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(q_full(s), 1 + STATS_ARRIVALS);
            mbar_init(do_full(s), 1);
            mbar_init(empty(s), EMPTY_ARRIVALS);
        }
        fence_barrier_init();
    }
};

/// The producer's copy thread: K and V of the key block, then Q and dO of every query chunk into the ring.
__device__ __forceinline__ void producer_copies(const KeyWork& work, const Pipeline& pipe, const StaTensorMap* q_map,
                                                const StaTensorMap* k_map, const StaTensorMap* v_map,
                                                const StaTensorMap* do_map) {
    prefetch_tensor_map(q_map);
    prefetch_tensor_map(k_map);
    prefetch_tensor_map(v_map);
    prefetch_tensor_map(do_map);
    mbar_expect_tx(pipe.kv_full(), 2 * KV_BYTES);
#pragma unroll
    for (int p = 0; p < PANELS; ++p)
#pragma unroll
        for (int r = 0; r < BLOCK_N; r += BOX_ROWS) {
            tma_load_3d(pipe.k_smem() + p * KV_PANEL_BYTES + r * 128, k_map, pipe.kv_full(), p * 64, work.key0 + r,
                        work.bh);
            tma_load_3d(pipe.v_smem() + p * KV_PANEL_BYTES + r * 128, v_map, pipe.kv_full(), p * 64, work.key0 + r,
                        work.bh);
        }
    QueryCursor cursor;
    cursor.start(work);
    for (int i = 0; cursor.valid(work); ++i, cursor.advance(work)) {
        const int stage = i % STAGES;
        const uint32_t phase = (i / STAGES) & 1;
        const int row0 = cursor.chunk(work).row0;
        mbar_wait(pipe.empty(stage), phase ^ 1);
        mbar_expect_tx(pipe.q_full(stage), CHUNK_BYTES);
#pragma unroll
        for (int p = 0; p < PANELS; ++p)
            tma_load_3d(pipe.q_stage(stage) + p * CHUNK_PANEL_BYTES, q_map, pipe.q_full(stage), p * 64, row0, work.bh);
        mbar_expect_tx(pipe.do_full(stage), CHUNK_BYTES);
#pragma unroll
        for (int p = 0; p < PANELS; ++p)
            tma_load_3d(pipe.do_stage(stage) + p * CHUNK_PANEL_BYTES, do_map, pipe.do_full(stage), p * 64, row0,
                        work.bh);
    }
}

/// The producer's statistics warp: LSE2 and Δ of every chunk's queries into the stage's statistics in the
/// consumers' order (lane l fills slots 2l and 2l + 1, statistic_column; +∞ and 0 for rows the chunk does
/// not hold), then one arrival per lane on the stage's "Q full".
__device__ __forceinline__ void producer_statistics(const KeyWork& work, const Pipeline& pipe,
                                                    const float* __restrict__ lse2, const float* __restrict__ delta) {
    const int lane = threadIdx.x % 32;
    const long long slice = static_cast<long long>(work.bh) * SEQ;
    QueryCursor cursor;
    cursor.start(work);
    for (int i = 0; cursor.valid(work); ++i, cursor.advance(work)) {
        const int stage = i % STAGES;
        const uint32_t phase = (i / STAGES) & 1;
        const QueryChunk c = cursor.chunk(work);
        float l[2], d[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int column = statistic_column(lane) + e;
            const bool inside = column < c.valid;
            l[e] = inside ? __ldg(lse2 + slice + c.row0 + column) : pos_inf();
            d[e] = inside ? __ldg(delta + slice + c.row0 + column) : 0.f;
        }
        mbar_wait(pipe.empty(stage), phase ^ 1);
        const uint32_t at = pipe.stats(stage) + 2 * lane * 4;
        asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(at), "f"(l[0]), "f"(l[1]) : "memory");
        asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(at + CHUNK * 4), "f"(d[0]), "f"(d[1]) : "memory");
        mbar_arrive(pipe.q_full(stage));
    }
}

/// A consumer warpgroup's main loop: its 64 key rows against every query chunk of `work`. Leaves dK
/// (unscaled) and dV in `dk`, `dv`; adds each chunk's dQ (unscaled) into `dq_accum` (the workspace,
/// permuted rows, see dq_permuted_column) by bulk reductions issued by one thread.
__device__ __forceinline__ void consumer_mainloop(const KeyWork& work, const Pipeline& pipe, int cw, float scale_log2,
                                                  float* __restrict__ dq_accum, float (&dk)[HEAD_DIM / 2],
                                                  float (&dv)[HEAD_DIM / 2]) {
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int lane = threadIdx.x % 32;
    const int warp = tid / 32;
    const int group = lane / 4, quad = lane % 4;
    const bool issuer = cw == 0 && tid == 0;  // issues the bulk reductions
    auto release = [&](uint32_t bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };

    const int key_row0 = cw * 64 + warp * 16 + group;  // this thread's rows of the key block: and + 8
    const float bias0 = key_row_real(work, key_row0) ? 0.f : neg_inf();
    const float bias1 = key_row_real(work, key_row0 + 8) ? 0.f : neg_inf();
    const uint32_t k_rows = pipe.k_smem() + cw * 64 * 128;
    const uint32_t v_rows = pipe.v_smem() + cw * 64 * 128;
    const long long slice = static_cast<long long>(work.bh) * SEQ;

    float s[CHUNK / 2], dp[CHUNK / 2], dq[HEAD_DIM / 4];
    uint32_t p[CHUNK / 4], ds[CHUNK / 4];

    mbar_wait(pipe.kv_full(), 0);
    QueryCursor cursor;
    cursor.start(work);
    for (int i = 0; cursor.valid(work); ++i, cursor.advance(work)) {
        const int stage = i % STAGES;
        const uint32_t phase = (i / STAGES) & 1;
        const QueryChunk c = cursor.chunk(work);
        const uint32_t q_chunk = pipe.q_stage(stage), do_chunk = pipe.do_stage(stage);
        const uint32_t stats = pipe.stats(stage);

        // Sᵀ and dPᵀ in flight together.
        mbar_wait(pipe.q_full(stage), phase);
        issue_transposed_scores(s, k_rows, q_chunk);
        mbar_wait(pipe.do_full(stage), phase);
        issue_transposed_scores(dp, v_rows, do_chunk);
        float statistics[CHUNK / 4];
        load_ahead<LSE2_AHEAD>(statistics, stats, quad);
        // Pᵀ once Sᵀ is in; dV += Pᵀ dO runs while dSᵀ is formed.
        wgmma_wait<1>();
        fence_registers(s);
        recompute_p(s, statistics, stats, quad, scale_log2, bias0, bias1);
        pack_fragments(p, s);
        issue_accumulate(dv, p, do_chunk);
        load_ahead<DELTA_AHEAD>(statistics, stats + CHUNK * 4, quad);
        wgmma_wait<1>();
        fence_registers(dp);
        recompute_ds(dp, s, statistics, stats, quad);
        pack_fragments(ds, dp);
        store_ds(pipe.ds_smem(), ds, key_row0, quad);
        issue_accumulate(dk, ds, q_chunk);
        // Both halves of dSᵀ in shared memory (and visible to wgmma); the last reduction has left dQ.
        fence_proxy_async_shared();
        if (issuer) bulk_wait_read<0>();
        named_barrier_sync(DS_READY_BARRIER, CONSUMER_THREADS);
        issue_dq(dq, pipe.ds_smem(), pipe.k_smem(), cw);
        wgmma_wait<0>();
        fence_registers(dq);
        fence_registers(dk);
        fence_registers(dv);
        fence_registers(p);
        fence_registers(ds);
        release(pipe.empty(stage));
        // The chunk's dQ: into the buffer, then one bulk reduction into the workspace.
        store_dq(pipe.dq_smem(), dq, slice + c.row0, cw, warp, group, quad);
        fence_proxy_async_shared();
        named_barrier_sync(DQ_READY_BARRIER, CONSUMER_THREADS);
        if (issuer) {
            bulk_reduce_add_f32(dq_accum + (slice + c.row0) * HEAD_DIM, pipe.dq_smem(), DQ_BYTES);
            bulk_commit();
        }
    }
    // The dQ buffer must outlive the last reduction's read of it; its writes complete without the CTA.
    if (issuer) bulk_wait_read<0>();
}

}  // namespace sta
