// Sliding Tile Attention, Hopper backward kernel: the scheduler, the pipeline and the main loops. The
// grid is persistent: every CTA takes key blocks (work units) in order from a global counter until none is
// left. One thread of the producer warpgroup, the scheduler, takes the units, decodes them and publishes
// each KeyWork to the CTA's other roles through a two-slot ring in shared memory (bh = −1: none left).
// The copy thread streams the query chunks of every unit into a ring of STAGES stages (TMA) and loads a unit's K and V once the consumers have released the previous unit's
// (after prefetching the unit's first chunks, which the previous unit's last products overlap); one warp
// copies each chunk's LSE2 and Δ (bounded by the chunk's valid rows) next to them. The consumers (two
// warpgroups of 64 key rows) run the five products per chunk, keep dK and dV in registers, hand the
// chunk's dQ contribution to a bulk reduction into the float32 workspace, and write dK and dV while the
// producer already loads the next unit. Ring positions and barrier phases run on across units: every role
// counts the chunks (and the loaded key blocks) of the units it has seen. After sta_sm90_bwd_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_consumer.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

/// Slots of the ring through which the scheduler publishes the units it takes.
constexpr int UNIT_SLOTS = 2;
/// Readers of a unit slot: the copy thread, the statistics warp and every consumer warp.
constexpr int UNIT_READERS = 2 + EMPTY_ARRIVALS;

/// mbarriers: the key block's "K/V full" and "K/V empty" (every consumer warp), per stage "Q full" (TMA
/// bytes and the statistics warp), "dO full" and "empty" (every consumer warp), per unit slot "full" (the
/// scheduler) and "empty" (UNIT_READERS), and "unit wanted" (the copy thread, once per unit it is done
/// issuing).
constexpr int PIPELINE_BARRIERS = 3 + 3 * STAGES + 2 * UNIT_SLOTS;

/// The CTA's mbarriers and unit slots: static shared memory, so their addresses are constants.
__shared__ __align__(8) uint64_t pipeline_barriers[PIPELINE_BARRIERS];
__shared__ KeyWork unit_slots[UNIT_SLOTS];

/// Shared-memory addresses of one CTA, its barriers and its unit slots.
struct Pipeline {
    uint32_t base;  // 1024-byte aligned dynamic shared memory

    __device__ __forceinline__ uint32_t k_smem() const { return base + K_OFFSET; }
    __device__ __forceinline__ uint32_t v_smem() const { return base + V_OFFSET; }
    __device__ __forceinline__ uint32_t q_stage(int s) const { return base + Q_OFFSET + s * CHUNK_BYTES; }
    __device__ __forceinline__ uint32_t do_stage(int s) const { return base + DO_OFFSET + s * CHUNK_BYTES; }
    __device__ __forceinline__ uint32_t ds_smem() const { return base + DS_OFFSET; }
    __device__ __forceinline__ uint32_t dq_smem() const { return base + DQ_OFFSET; }
    __device__ __forceinline__ uint32_t stats(int s) const { return base + STATS_OFFSET + s * STATS_BYTES; }

    __device__ __forceinline__ uint32_t bar0() const { return ptx::shared_address(pipeline_barriers); }
    __device__ __forceinline__ KeyWork* units() const { return unit_slots; }
    __device__ __forceinline__ uint32_t kv_full() const { return bar0(); }
    __device__ __forceinline__ uint32_t kv_empty() const { return bar0() + 8u; }
    __device__ __forceinline__ uint32_t q_full(int s) const { return bar0() + 8u * (2 + s); }
    __device__ __forceinline__ uint32_t do_full(int s) const { return bar0() + 8u * (2 + STAGES + s); }
    __device__ __forceinline__ uint32_t empty(int s) const { return bar0() + 8u * (2 + 2 * STAGES + s); }
    __device__ __forceinline__ uint32_t unit_full(int s) const { return bar0() + 8u * (2 + 3 * STAGES + s); }
    __device__ __forceinline__ uint32_t unit_empty(int s) const { return bar0() + 8u * (2 + 3 * STAGES + UNIT_SLOTS + s); }
    __device__ __forceinline__ uint32_t unit_wanted() const { return bar0() + 8u * (2 + 3 * STAGES + 2 * UNIT_SLOTS); }

    /// One thread: every barrier's arrival count.
    __device__ __forceinline__ void init() const {
        mbar_init(kv_full(), 1);
        mbar_init(kv_empty(), EMPTY_ARRIVALS);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(q_full(s), 1 + STATS_ARRIVALS);
            mbar_init(do_full(s), 1);
            mbar_init(empty(s), EMPTY_ARRIVALS);
        }
        for (int s = 0; s < UNIT_SLOTS; ++s) {
            mbar_init(unit_full(s), 1);
            mbar_init(unit_empty(s), UNIT_READERS);
        }
        mbar_init(unit_wanted(), 1);
        fence_barrier_init();
    }
};

/// The kernel's view of its work: the tables decode_key_work reads.
struct Schedule {
    int heads;
    int batch;
    const int* window_of_head;
    const int* query_tile_start;
    const int* query_tiles;
    const int* text_valid;
    int default_text_valid;

    __device__ __forceinline__ KeyWork decode(int unit) const {
        return decode_key_work(unit, heads, batch, window_of_head, query_tile_start, query_tiles, text_valid,
                               default_text_valid);
    }
};

/// The scheduler thread: takes units from `counter` (zeroed before the launch) in order, decodes each and
/// publishes it in the next slot, then a KeyWork with bh = −1 once none is left. It takes the CTA's next
/// unit only once the copy thread has issued every chunk of the current one (the consumers then have
/// STAGES chunks left, which hide the counter's round trip): taking it earlier would hold work back from
/// CTAs that finish sooner at the end of the grid.
__device__ __forceinline__ void schedule_units(const Schedule& sched, const Pipeline& pipe, unsigned int* counter,
                                               int units) {
    for (int n = 0;; ++n) {
        const int slot = n % UNIT_SLOTS;
        if (n > 0) mbar_wait(pipe.unit_wanted(), (n - 1) & 1);
        mbar_wait(pipe.unit_empty(slot), ((n / UNIT_SLOTS) & 1) ^ 1);
        const int unit = static_cast<int>(atomicAdd(counter, 1u));
        KeyWork work = {};
        if (unit < units) {
            work = sched.decode(unit);
        } else {
            work.bh = -1;
        }
        pipe.units()[slot] = work;
        mbar_arrive(pipe.unit_full(slot));
        if (unit >= units) return;
    }
}

/// A reader's turn on unit slot `n` mod UNIT_SLOTS (the n-th unit this CTA takes): waits until it is
/// published and returns it, in shared memory, until release_unit. bh = −1: no unit left. Every role
/// reads its fields where it uses them rather than holding them in registers.
__device__ __forceinline__ const KeyWork& acquire_unit(const Pipeline& pipe, int n) {
    const int slot = n % UNIT_SLOTS;
    mbar_wait(pipe.unit_full(slot), (n / UNIT_SLOTS) & 1);
    return pipe.units()[slot];
}

/// Releases unit slot `n` mod UNIT_SLOTS: one arrival per warp (every lane calls it), or per thread with
/// `WholeWarp` false.
template <bool WholeWarp>
__device__ __forceinline__ void release_unit(const Pipeline& pipe, int n) {
    if constexpr (WholeWarp) {
        __syncwarp();
        if (threadIdx.x % 32 == 0) mbar_arrive(pipe.unit_empty(n % UNIT_SLOTS));
    } else {
        mbar_arrive(pipe.unit_empty(n % UNIT_SLOTS));
    }
}

/// The copy thread: K and V of `work` into their buffers once the consumers have released the previous
/// key block's (`loaded`: key blocks this CTA loaded before).
__device__ __forceinline__ void load_key_block(const KeyWork& work, const Pipeline& pipe, int loaded,
                                               const StaTensorMap* k_map, const StaTensorMap* v_map) {
    mbar_wait(pipe.kv_empty(), (loaded & 1) ^ 1);
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
}

/// The producer's copy thread: per unit the scheduler publishes that has a real key, Q and dO of every
/// query chunk into the ring and K and V of the block (before the first chunk for the CTA's first block,
/// after the first STAGES chunks otherwise: those wait only for the previous block's last chunks, K and
/// V for its last products). Reads the unit from its slot where it uses it (few registers).
__device__ __forceinline__ void producer_copies(const Pipeline& pipe, const StaTensorMap* q_map, const StaTensorMap* k_map,
                                                const StaTensorMap* v_map, const StaTensorMap* do_map) {
    prefetch_tensor_map(q_map);
    prefetch_tensor_map(k_map);
    prefetch_tensor_map(v_map);
    prefetch_tensor_map(do_map);
    int it = 0;      // chunks issued so far: the ring position
    int loaded = 0;  // key blocks loaded so far
    for (int n = 0;; ++n) {
        const KeyWork& work = acquire_unit(pipe, n);
        if (work.bh < 0) break;
        if (!work.any) {
            release_unit<false>(pipe, n);
            mbar_arrive(pipe.unit_wanted());
            continue;
        }
        // Chunks issued before K and V: none for the CTA's first block, else STAGES (counted down to 0,
        // then −1 once K and V are issued).
        int before_kv = loaded == 0 ? 0 : STAGES;
        QueryCursor cursor;
        cursor.start(work);
        for (; cursor.valid(work); cursor.advance(work)) {
            if (before_kv-- == 0) load_key_block(work, pipe, loaded, k_map, v_map);
            const int stage = it % STAGES;
            const uint32_t phase = (it / STAGES) & 1;
            ++it;
            const int row0 = cursor.chunk(work).row0;
            mbar_wait(pipe.empty(stage), phase ^ 1);
            mbar_expect_tx(pipe.q_full(stage), CHUNK_BYTES);
#pragma unroll
            for (int p = 0; p < PANELS; ++p)
                tma_load_3d(pipe.q_stage(stage) + p * CHUNK_PANEL_BYTES, q_map, pipe.q_full(stage), p * 64, row0,
                            work.bh);
            mbar_expect_tx(pipe.do_full(stage), CHUNK_BYTES);
#pragma unroll
            for (int p = 0; p < PANELS; ++p)
                tma_load_3d(pipe.do_stage(stage) + p * CHUNK_PANEL_BYTES, do_map, pipe.do_full(stage), p * 64, row0,
                            work.bh);
        }
        if (before_kv >= 0) load_key_block(work, pipe, loaded, k_map, v_map);
        ++loaded;
        release_unit<false>(pipe, n);
        mbar_arrive(pipe.unit_wanted());
    }
}

/// The producer's statistics warp: per unit with a real key, LSE2 and Δ of every chunk's queries into the
/// stage's statistics (+∞ and 0 for rows the chunk does not hold), then one arrival per lane on the
/// stage's "Q full". Few registers: the unit is read from its slot where it is used.
__device__ __forceinline__ void producer_statistics(const Pipeline& pipe, const float* __restrict__ lse2,
                                                    const float* __restrict__ delta) {
    const int lane = threadIdx.x % 32;
    int it = 0;  // chunks so far: the ring position
    for (int n = 0;; ++n) {
        const KeyWork& work = acquire_unit(pipe, n);
        if (work.bh < 0) break;
        if (work.any) {
            QueryCursor cursor;
            cursor.start(work);
            for (; cursor.valid(work); ++it, cursor.advance(work)) {
                const int stage = it % STAGES;
                const QueryChunk c = cursor.chunk(work);
                const int column = 2 * lane;
                const long long row = static_cast<long long>(work.bh) * SEQ + c.row0 + column;
                const float l0 = column < c.valid ? __ldg(lse2 + row) : pos_inf();
                const float l1 = column + 1 < c.valid ? __ldg(lse2 + row + 1) : pos_inf();
                const float d0 = column < c.valid ? __ldg(delta + row) : 0.f;
                const float d1 = column + 1 < c.valid ? __ldg(delta + row + 1) : 0.f;
                mbar_wait(pipe.empty(stage), ((it / STAGES) & 1) ^ 1);
                const uint32_t at = pipe.stats(stage) + column * 4;
                asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(at), "f"(l0), "f"(l1) : "memory");
                asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(at + CHUNK * 4), "f"(d0), "f"(d1) : "memory");
                mbar_arrive(pipe.q_full(stage));
            }
        }
        release_unit<true>(pipe, n);
    }
}

/// A consumer warpgroup's main loop over one key block: its 64 key rows against every query chunk of
/// `work`. Leaves dK (unscaled) and dV in `dk`, `dv`; adds each chunk's dQ (unscaled) into `dq_accum`
/// (the workspace, permuted rows, see dq_permuted_column) by bulk reductions issued by one thread, which
/// may still be in flight on return. `it` (chunks so far: the ring position) advances by the block's
/// chunks; `loaded` counts the key blocks before this one. Releases K and V when done with them.
__device__ __forceinline__ void consumer_mainloop(const KeyWork& work, const Pipeline& pipe, int cw, float scale_log2,
                                                  float* __restrict__ dq_accum, float (&dk)[HEAD_DIM / 2],
                                                  float (&dv)[HEAD_DIM / 2], int& it, int loaded) {
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

    mbar_wait(pipe.kv_full(), loaded & 1);
    QueryCursor cursor;
    cursor.start(work);
    for (; cursor.valid(work); ++it, cursor.advance(work)) {
        const int stage = it % STAGES;
        const uint32_t phase = (it / STAGES) & 1;
        const QueryChunk c = cursor.chunk(work);
        const uint32_t q_chunk = pipe.q_stage(stage), do_chunk = pipe.do_stage(stage);
        const uint32_t stats = pipe.stats(stage);

        // Sᵀ and dPᵀ in flight together.
        mbar_wait(pipe.q_full(stage), phase);
        issue_transposed_scores(s, k_rows, q_chunk);
        mbar_wait(pipe.do_full(stage), phase);
        issue_transposed_scores(dp, v_rows, do_chunk);
        // Pᵀ once Sᵀ is in; dV += Pᵀ dO runs while dSᵀ is formed.
        wgmma_wait<1>();
        fence_registers(s);
        recompute_p(s, stats, quad, scale_log2, bias0, bias1);
        pack_fragments(p, s);
        issue_accumulate(dv, p, do_chunk);
        wgmma_wait<1>();
        fence_registers(dp);
        recompute_ds(dp, s, stats, quad);
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
    // Every product of this warpgroup that reads K or V has completed (the last chunk's wgmma_wait).
    release(pipe.kv_empty());
}

}  // namespace sta
