// Sliding Tile Attention, Hopper forward kernel: the scheduler, the pipeline and its main loops. A CTA
// computes units of work (query blocks) one after another: its own index first, then, with a work counter,
// the tickets it takes. The producer (one thread of warpgroup 0) publishes each unit, streams its query
// block and every K/V chunk it attends through TMA into a ring of STAGES shared-memory stages, and moves on
// to the next unit as soon as the consumers are done with the query block; the consumers (warpgroups 1 and
// 2, 64 query rows each) wait for each chunk, compute S = Q·Kᵀ, mask, softmax and O += P·V, hand the stage
// back, and write the unit's output while the next unit's query block and first chunks load. After
// sta_sm90_consumer.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_consumer.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

namespace sta {

/// The units of one launch and how a CTA takes them: its own index first; then, with a work counter, one
/// ticket per unit it computes (gridDim.x + the counter's old value), until a ticket runs past `units`.
/// Without one (null), a CTA computes its own unit alone and the grid has one CTA per unit.
struct Scheduler {
    int* counter;  // [0]: tickets taken, [1]: CTAs done; zero before every launch (see finish)
    int units;

    /// The unit after the current one (≥ units: none): one atomic.
    __device__ __forceinline__ int next() const { return counter ? static_cast<int>(gridDim.x) + atomicAdd(counter, 1) : units; }

    /// Once per CTA, after its last ticket: the last CTA to finish zeroes the counter for the next launch
    /// (every CTA has taken its last ticket before it counts itself done).
    __device__ __forceinline__ void finish() const {
        if (counter == nullptr) return;
        __threadfence();
        if (atomicAdd(counter + 1, 1) == static_cast<int>(gridDim.x) - 1) {
            atomicExch(counter, 0);
            atomicExch(counter + 1, 0);
        }
    }
};

/// What every role reads of the launch besides the tensors.
struct Problem {
    int heads, batch;
    const int* window_of_head;
    const int* key_tile_start;
    const int* key_tiles;
    const int* text_valid;
    int default_text_valid;

    __device__ __forceinline__ Work rows(int unit) const {
        return decode_rows(unit, heads, batch, text_valid, default_text_valid);
    }
};

/// mbarriers of the pipeline: the unit's (the record written), the query block's full and empty, then
/// "full" and "empty" per stage for K and V.
constexpr int PIPELINE_BARRIERS = 3 + 4 * STAGES;

/// What the scheduler publishes of a unit: its index (−1 for the end) and whether it has chunks (rows that
/// attend something, and keys), for everyone; its batch · head, key tiles and valid text for the copy
/// thread, which walks its chunks.
struct UnitRecord {
    int unit;
    int computes;
    int bh;
    int text_query;
    int tile_count;
    int tile_start;
    int text_valid;
};
/// 64-bit words of the CTA's control block in shared memory: the barriers, the unit record and the copy
/// thread's unit count, and one ChunkInfo per stage.
constexpr int CONTROL_WORDS = PIPELINE_BARRIERS + 4 + (STAGES + 1) / 2;
static_assert((8 * PIPELINE_BARRIERS + 8) % 16 == 0, "the record's 16-byte accesses need 16-byte alignment");

/// Shared-memory addresses of one CTA, all from two: `base`, the 1 KiB-aligned dynamic shared memory (the
/// query block, then the K ring, then the V ring), and `control`, the control block: the barriers ([0] unit;
/// [1] Q full; [2] Q empty; [3 + s] K full; [3 + S + s] V full; [3 + 2S + s] K empty; [3 + 3S + s] V empty),
/// the unit record (written by the scheduler before it arrives on the unit and Q full barriers, read by
/// the copy thread and the consumers before they arrive on Q empty), the copy thread's count of the units
/// it has seen (its 24 registers hold the chunk loop), and one ChunkInfo per stage (written
/// by the copy thread before it arms the stage's K full barrier, read by the consumers after they have
/// waited on it and before they release the stage's K). Units count phases of the unit and Q barriers,
/// chunks (over all units of the CTA) those of the ring.
struct Pipeline {
    uint32_t base;
    uint32_t control;

    __device__ __forceinline__ uint32_t q_smem() const { return base; }
    __device__ __forceinline__ uint32_t k_stage(int s) const { return base + Q_BYTES + s * KV_BYTES; }
    __device__ __forceinline__ uint32_t v_stage(int s) const { return base + Q_BYTES + (STAGES + s) * KV_BYTES; }

    __device__ __forceinline__ uint32_t unit_full() const { return control; }
    __device__ __forceinline__ uint32_t q_full() const { return control + 8u; }
    __device__ __forceinline__ uint32_t q_empty() const { return control + 16u; }
    __device__ __forceinline__ uint32_t k_full(int s) const { return control + 8u * (3 + s); }
    __device__ __forceinline__ uint32_t v_full(int s) const { return control + 8u * (3 + STAGES + s); }
    __device__ __forceinline__ uint32_t k_empty(int s) const { return control + 8u * (3 + 2 * STAGES + s); }
    __device__ __forceinline__ uint32_t v_empty(int s) const { return control + 8u * (3 + 3 * STAGES + s); }
    __device__ __forceinline__ uint32_t record() const { return control + 8u * PIPELINE_BARRIERS; }
    __device__ __forceinline__ uint32_t info_slot(int s) const { return control + 8u * (PIPELINE_BARRIERS + 4) + 4u * s; }

    __device__ __forceinline__ void publish(int s, ChunkInfo info) const {
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(info_slot(s)), "r"(info.bits) : "memory");
    }
    __device__ __forceinline__ ChunkInfo info(int s) const {
        ChunkInfo info;
        asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(info.bits) : "r"(info_slot(s)) : "memory");
        return info;
    }
    // The record's words: [0] unit, [1] computes, [2] bh, [3] text_query, [4] tile_count, [5] tile_start,
    // [6] text_valid, and [7] the copy thread's count of the units it has seen.
    __device__ __forceinline__ void publish(const UnitRecord& r) const {
        asm volatile("st.shared.v2.s32 [%0], {%1, %2};\n" ::"r"(record()), "r"(r.unit), "r"(r.computes) : "memory");
        asm volatile("st.shared.v4.s32 [%0], {%1, %2, %3, %4};\n" ::"r"(record() + 8u), "r"(r.bh), "r"(r.text_query),
                     "r"(r.tile_count), "r"(r.tile_start)
                     : "memory");
        asm volatile("st.shared.s32 [%0], %1;\n" ::"r"(record() + 24u), "r"(r.text_valid) : "memory");
    }
    /// The published unit (−1: the end) and whether it has chunks.
    __device__ __forceinline__ int unit(bool& computes) const {
        int unit, flag;
        asm volatile("ld.shared.v2.s32 {%0, %1}, [%2];\n" : "=r"(unit), "=r"(flag) : "r"(record()) : "memory");
        computes = flag != 0;
        return unit;
    }
    /// What the copy thread walks of the published unit (its key tiles and valid text), read from the record.
    __device__ __forceinline__ Work unit_work() const {
        Work w;
        int text_query;
        asm volatile("ld.shared.v4.s32 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(w.bh), "=r"(text_query), "=r"(w.tile_count), "=r"(w.tile_start)
                     : "r"(record() + 8u)
                     : "memory");
        asm volatile("ld.shared.s32 %0, [%1];\n" : "=r"(w.text_valid) : "r"(record() + 24u) : "memory");
        w.text_query = text_query != 0;
        return w;
    }
    /// The copy thread's count of the units it has seen (kept here: its 24 registers hold the chunk loop).
    __device__ __forceinline__ int copied_units() const {
        int n;
        asm volatile("ld.shared.s32 %0, [%1];\n" : "=r"(n) : "r"(record() + 28u) : "memory");
        return n;
    }
    __device__ __forceinline__ void set_copied_units(int n) const {
        asm volatile("st.shared.s32 [%0], %1;\n" ::"r"(record() + 28u), "r"(n) : "memory");
    }

    /// One thread: every barrier's arrival count. The unit and full barriers complete on one arrival (the
    /// scheduler's, the copy thread's) and the transaction bytes; Q empty on the arrival of every warp of
    /// both consumer warpgroups and of the copy thread (done with the unit's query block and record); a
    /// stage's empty barriers on the arrival of every consumer warp, which also arrive for the chunks and
    /// query blocks they do not compute.
    __device__ __forceinline__ void init() const {
        mbar_init(unit_full(), 1);
        mbar_init(q_full(), 1);
        mbar_init(q_empty(), 2 * CONSUMER_WARPS + 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(k_full(s), 1);
            mbar_init(v_full(s), 1);
            mbar_init(k_empty(s), 2 * CONSUMER_WARPS);
            mbar_init(v_empty(s), 2 * CONSUMER_WARPS);
        }
        fence_barrier_init();
    }
};

/// The producer's scheduler (one thread): takes the CTA's units and, for each, once the copy thread and the
/// consumers are done with the previous one's record and query block, publishes its record and loads its
/// query block (unless packed: the consumers gather it). The next unit's ticket is taken, and its key
/// tiles located, while the consumers compute the current one.
__device__ __forceinline__ void producer_schedule(const Scheduler& scheduler, const Problem& problem,
                                                  const Pipeline& pipe, const StaTensorMap* q_map) {
    prefetch_tensor_map(q_map);
    int unit = blockIdx.x;
    for (int n = 0;; ++n) {
        UnitRecord r{-1, 0, 0, 0, 0, 0, 0};
        bool loads_q = false;
        int row0 = 0;
        if (unit < scheduler.units) {
            Work work = problem.rows(unit);
            attach_keys(work, problem.heads, problem.window_of_head, problem.key_tile_start);
            ChunkCursor cursor;
            cursor.start(work, problem.key_tiles);
            const bool computes = work.any && cursor.valid(work);
            r = {unit, computes, work.bh, work.text_query, work.tile_count, work.tile_start, work.text_valid};
            loads_q = computes && !work.packed;
            row0 = work.row0;
        }
        if (n > 0) mbar_wait(pipe.q_empty(), (n - 1) & 1);
        pipe.publish(r);
        mbar_arrive(pipe.unit_full());
        if (loads_q) {
            mbar_expect_tx(pipe.q_full(), Q_BYTES);
#pragma unroll
            for (int p = 0; p < PANELS; ++p)
#pragma unroll
                for (int rr = 0; rr < BLOCK_M; rr += BOX_ROWS)
                    tma_load_3d(pipe.q_smem() + p * Q_PANEL_BYTES + rr * 128, q_map, pipe.q_full(), p * 64, row0 + rr,
                                r.bh);
        } else {
            mbar_arrive(pipe.q_full());  // nothing to load: packed rows are gathered by the consumers
        }
        if (r.unit < 0) break;
        unit = scheduler.next();
    }
    scheduler.finish();
}

/// The producer's copy thread (one thread): for each unit the scheduler publishes, every key chunk it
/// attends into the ring, each stage reused once the consumers have released it, with the chunk's
/// ChunkInfo. Packed chunks come through k_slices and v_slices, the 4D views of K and V.
__device__ __forceinline__ void producer_copies(const Problem& problem, const Pipeline& pipe,
                                                const StaTensorMap* k_map, const StaTensorMap* v_map,
                                                const StaTensorMap* k_slices, const StaTensorMap* v_slices) {
    prefetch_tensor_map(k_map);
    prefetch_tensor_map(v_map);
    if constexpr (PACK_KEYS) {
        prefetch_tensor_map(k_slices);
        prefetch_tensor_map(v_slices);
    }
    // One chunk of K or V: PANELS × BLOCK_N / BOX_ROWS boxes of 64 columns × 64 rows; a narrow chunk is
    // one box per panel (64 rows, or KEY_SLICES runs of SLICE_KEYS rows from the 4D view).
    auto load_chunk = [&](uint32_t dst, const StaTensorMap* map, const StaTensorMap* slices, uint32_t bar,
                          int key_row, int bh, bool narrow) {
        mbar_expect_tx(bar, narrow ? PANELS * NARROW_N * 128 : KV_BYTES);
#pragma unroll
        for (int p = 0; p < PANELS; ++p) {
            if (PACK_KEYS && narrow) {
                tma_load_4d(dst + p * KV_PANEL_BYTES, slices, bar, p * 64, 0, key_row / SLICE, bh);
                continue;
            }
#pragma unroll
            for (int r = 0; r < BLOCK_N; r += BOX_ROWS)
                if (r == 0 || !narrow) tma_load_3d(dst + p * KV_PANEL_BYTES + r * 128, map, bar, p * 64, key_row + r, bh);
        }
    };
    // One loop over the chunks of all units, the unit's fields read from its record where they are used:
    // the thread's 24 registers hold the cursor and the copies, not a loop nest.
    ChunkCursor cursor;
    cursor.part = cursor.parts = 0;  // on no chunk
    pipe.set_copied_units(0);
    for (int g = 0;; ++g) {  // g: the chunk's ring position
        while (!cursor.valid(pipe.unit_work())) {  // the next unit with chunks
            const int n = pipe.copied_units();
            pipe.set_copied_units(n + 1);
            if (n > 0) mbar_arrive(pipe.q_empty());  // done with the previous unit's record
            mbar_wait(pipe.unit_full(), n & 1);
            bool computes;
            if (pipe.unit(computes) < 0) return;
            cursor.start(pipe.unit_work(), problem.key_tiles);
            if (!computes) cursor.listed = pipe.unit_work().tile_count + 1;  // nothing to load
        }
        const int stage = g % STAGES;
        const uint32_t phase = (g / STAGES) & 1;
        const Chunk chunk = cursor.chunk(pipe.unit_work());
        const bool narrow = ChunkInfo::narrow(chunk);
        ChunkInfo info = ChunkInfo::of(chunk);
        cursor.advance(pipe.unit_work(), problem.key_tiles);
        const Work work = pipe.unit_work();
        const bool last = !cursor.valid(work);
        info.bits |= last ? ChunkInfo::LAST : (ChunkInfo::narrow(cursor.chunk(work)) ? ChunkInfo::NEXT_NARROW : 0u);
        mbar_wait(pipe.k_empty(stage), phase ^ 1);
        pipe.publish(stage, info);
        load_chunk(pipe.k_stage(stage), k_map, k_slices, pipe.k_full(stage), chunk.key_row, work.bh, narrow);
        mbar_wait(pipe.v_empty(stage), phase ^ 1);
        load_chunk(pipe.v_stage(stage), v_map, v_slices, pipe.v_full(stage), chunk.key_row, pipe.unit_work().bh,
                   narrow);
    }
}

/// Hands a stage's K or V back to the producer: one arrival per warp, once every lane is done with it.
__device__ __forceinline__ void release_stage(uint32_t bar) {
    __syncwarp();
    if (threadIdx.x % 32 == 0) mbar_arrive(bar);
}

/// Step i ≥ 1 of a unit's chunks, chunk g of the CTA: S_i = Q·K_iᵀ (NC keys) and O += P_{i−1}·V_{i−1} (NP
/// keys) in flight together; the softmax of S_i meanwhile. The unit's last Q·Kᵀ hands the query block back.
/// Returns chunk i's ChunkInfo.
template <int NC, int NP>
__device__ __forceinline__ ChunkInfo consumer_step(int g, const Pipeline& pipe, uint32_t q_rows, uint32_t scratch,
                                                   int quad, float scale_log2, float (&s)[BLOCK_N / 2],
                                                   uint32_t (&p)[BLOCK_N / 4], float (&acc)[HEAD_DIM / 2], float& m0,
                                                   float& m1, float& l0, float& l1) {
    const int stage = g % STAGES;
    const int previous = (g - 1) % STAGES;
    mbar_wait(pipe.k_full(stage), (g / STAGES) & 1);
    mbar_wait(pipe.v_full(previous), ((g - 1) / STAGES) & 1);
    issue_qk<NC>(s, q_rows, pipe.k_stage(stage));
    issue_pv<NP>(acc, p, pipe.v_stage(previous));
    const ChunkInfo c = pipe.info(stage);
    wgmma_wait<1>();
    fence_registers(s);
    release_stage(pipe.k_empty(stage));
    if (c.last()) release_stage(pipe.q_empty());
    mask_chunk<NC>(s, c, quad);
    float corr0, corr1;
    const bool moved = softmax_chunk<NC>(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
    order_before_wait(scratch, l0, l1);  // the softmax overlaps P·V (l0, l1 depend on every score)
    wgmma_wait<0>();
    fence_registers(acc);
    fence_registers(p);
    release_stage(pipe.v_empty(previous));
    if (moved) rescale(acc, corr0, corr1);  // most chunks leave the running maxima where they are
    pack_p<NC>(p, s);
    return c;
}

/// A unit's first chunk, chunk g of the CTA (N keys): S, softmax.
template <int N>
__device__ __forceinline__ void consumer_first(int g, const Pipeline& pipe, ChunkInfo c, uint32_t q_rows, int quad,
                                               float scale_log2, float (&s)[BLOCK_N / 2], uint32_t (&p)[BLOCK_N / 4],
                                               float& m0, float& m1, float& l0, float& l1) {
    const int stage = g % STAGES;
    issue_qk<N>(s, q_rows, pipe.k_stage(stage));
    wgmma_wait<0>();
    fence_registers(s);
    release_stage(pipe.k_empty(stage));
    if (c.last()) release_stage(pipe.q_empty());
    mask_chunk<N>(s, c, quad);
    softmax_first_chunk<N>(s, scale_log2, m0, m1, l0, l1);
    pack_p<N>(p, s);
}

/// A unit's last P·V (chunk g − 1 of the CTA, N keys).
template <int N>
__device__ __forceinline__ void consumer_last(int g, const Pipeline& pipe, const uint32_t (&p)[BLOCK_N / 4],
                                              float (&acc)[HEAD_DIM / 2]) {
    const int last = (g - 1) % STAGES;
    mbar_wait(pipe.v_full(last), ((g - 1) / STAGES) & 1);
    issue_pv<N>(acc, p, pipe.v_stage(last));
    wgmma_wait<0>();
    fence_registers(acc);
    release_stage(pipe.v_empty(last));
}

/// A consumer warpgroup's main loop over one unit, whose chunks start at chunk g of the CTA: its 64 rows
/// (`q_rows` inside each Q panel) against every key chunk of `work`; leaves the unnormalised O in `acc`
/// and the thread's running maxima and partial sums of its two rows in m0, m1, l0, l1, and hands the
/// query block back after the last Q·Kᵀ. Returns the CTA's chunk count after the unit.
__device__ __forceinline__ int consumer_mainloop(const Work& work, int g, const Pipeline& pipe, int cw, uint32_t q_rows,
                                                 float scale_log2, const uint16_t* __restrict__ q,
                                                 float (&acc)[HEAD_DIM / 2], float& m0, float& m1, float& l0,
                                                 float& l1) {
    const int lane = threadIdx.x % 32;
    const int tid = threadIdx.x % WARPGROUP_THREADS;
    const int quad = lane % 4;
    __shared__ float2 order_scratch[8];  // one word pair per consumer warp, written and never read
    const uint32_t scratch = ptx::shared_address(&order_scratch[(threadIdx.x / 32) % 8]);

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
    }

    // Chunk 0, then chunks 1, 2, …: each chunk's width is known before its Q·Kᵀ is issued (the previous
    // chunk's ChunkInfo says whether the next is narrow), and each P·V has its chunk's width.
    mbar_wait(pipe.k_full(g % STAGES), (g / STAGES) & 1);
    ChunkInfo c = pipe.info(g % STAGES);
    bool narrow = NARROW_CHUNKS && c.is_narrow();
    if (narrow) {
        if constexpr (NARROW_CHUNKS) consumer_first<NARROW_N>(g, pipe, c, q_rows, quad, scale_log2, s, p, m0, m1, l0, l1);
    } else {
        consumer_first<BLOCK_N>(g, pipe, c, q_rows, quad, scale_log2, s, p, m0, m1, l0, l1);
    }
    for (++g; !c.last(); ++g) {
        const bool previous_narrow = narrow;
        narrow = NARROW_CHUNKS && c.next_narrow();
        if constexpr (NARROW_CHUNKS) {
            if (narrow || previous_narrow) {
                if (narrow && previous_narrow) {
                    c = consumer_step<NARROW_N, NARROW_N>(g, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                          m1, l0, l1);
                } else if (narrow) {
                    c = consumer_step<NARROW_N, BLOCK_N>(g, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                         m1, l0, l1);
                } else {
                    c = consumer_step<BLOCK_N, NARROW_N>(g, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                         m1, l0, l1);
                }
                continue;
            }
        }
        c = consumer_step<BLOCK_N, BLOCK_N>(g, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0, m1, l0, l1);
    }
    if (narrow) {
        if constexpr (NARROW_CHUNKS) consumer_last<NARROW_N>(g, pipe, p, acc);
    } else {
        consumer_last<BLOCK_N>(g, pipe, p, acc);
    }
    return g;
}

/// A consumer warpgroup that does not compute a unit the other one computes (a block of at most 64 rows)
/// still takes part in the ring: it releases each of the unit's chunks once loaded. Returns the CTA's chunk
/// count after the unit.
__device__ __forceinline__ int consumer_skip(int g, const Pipeline& pipe) {
    for (bool last = false; !last; ++g) {
        const int stage = g % STAGES;
        const uint32_t phase = (g / STAGES) & 1;
        mbar_wait(pipe.k_full(stage), phase);
        last = pipe.info(stage).last();
        release_stage(pipe.k_empty(stage));
        mbar_wait(pipe.v_full(stage), phase);
        release_stage(pipe.v_empty(stage));
    }
    return g;
}

}  // namespace sta
