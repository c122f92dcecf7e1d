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

/// Shared-memory addresses of one CTA: the query block, the K and V rings, the barriers ([0] Q full;
/// [1 + s] K full; [1 + S + s] V full; [1 + 2S + s] K empty; [1 + 3S + s] V empty) and one ChunkInfo per
/// stage (written by the producer before it arms the stage's K full barrier, read by the consumers after
/// they have waited on it and before they release the stage's K).
struct Pipeline {
    uint32_t q_smem;
    uint32_t k_smem;
    uint32_t v_smem;
    uint32_t bar0;
    uint32_t info0;

    __device__ __forceinline__ uint32_t q_full() const { return bar0; }
    __device__ __forceinline__ uint32_t k_full(int s) const { return bar0 + 8u * (1 + s); }
    __device__ __forceinline__ uint32_t v_full(int s) const { return bar0 + 8u * (1 + STAGES + s); }
    __device__ __forceinline__ uint32_t k_empty(int s) const { return bar0 + 8u * (1 + 2 * STAGES + s); }
    __device__ __forceinline__ uint32_t v_empty(int s) const { return bar0 + 8u * (1 + 3 * STAGES + s); }

    __device__ __forceinline__ void publish(int s, ChunkInfo info) const {
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(info0 + 4u * s), "r"(info.bits) : "memory");
    }
    __device__ __forceinline__ ChunkInfo info(int s) const {
        ChunkInfo info;
        asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(info.bits) : "r"(info0 + 4u * s) : "memory");
        return info;
    }

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
/// every key chunk of `work` into the ring, each stage reused once the consumers have released it, with
/// the chunk's ChunkInfo. Packed chunks come through k_slices and v_slices, the 4D views of K and V.
__device__ __forceinline__ void producer_mainloop(const Work& work, const Pipeline& pipe, const StaTensorMap* q_map,
                                                  const StaTensorMap* k_map, const StaTensorMap* v_map,
                                                  const StaTensorMap* k_slices, const StaTensorMap* v_slices) {
    prefetch_tensor_map(q_map);
    prefetch_tensor_map(k_map);
    prefetch_tensor_map(v_map);
    if constexpr (PACK_KEYS) {
        prefetch_tensor_map(k_slices);
        prefetch_tensor_map(v_slices);
    }
    if (!work.packed) {  // packed query rows are gathered by the consumers
        mbar_expect_tx(pipe.q_full(), Q_BYTES);
#pragma unroll
        for (int p = 0; p < PANELS; ++p)
#pragma unroll
            for (int r = 0; r < BLOCK_M; r += BOX_ROWS)
                tma_load_3d(pipe.q_smem + p * Q_PANEL_BYTES + r * 128, q_map, pipe.q_full(), p * 64, work.row0 + r,
                            work.bh);
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
    ChunkCursor cursor;
    cursor.start(work);
    if (!cursor.valid(work)) return;  // no chunk: the consumers skip the main loop too
    for (int i = 0;; ++i) {
        const int stage = i % STAGES;
        const uint32_t phase = (i / STAGES) & 1;
        const Chunk chunk = cursor.chunk(work);
        const int key_row = chunk.key_row;
        const bool narrow = ChunkInfo::narrow(chunk);
        ChunkInfo info = ChunkInfo::of(chunk);
        cursor.advance(work);
        const bool last = !cursor.valid(work);
        info.bits |= last ? ChunkInfo::LAST : (ChunkInfo::narrow(cursor.chunk(work)) ? ChunkInfo::NEXT_NARROW : 0u);
        mbar_wait(pipe.k_empty(stage), phase ^ 1);
        pipe.publish(stage, info);
        load_chunk(pipe.k_smem + stage * KV_BYTES, k_map, k_slices, pipe.k_full(stage), key_row, work.bh, narrow);
        mbar_wait(pipe.v_empty(stage), phase ^ 1);
        load_chunk(pipe.v_smem + stage * KV_BYTES, v_map, v_slices, pipe.v_full(stage), key_row, work.bh, narrow);
        if (last) break;
    }
}

/// Hands a stage's K or V back to the producer: one arrival per warp, once every lane is done with it.
__device__ __forceinline__ void release_stage(uint32_t bar) {
    __syncwarp();
    if (threadIdx.x % 32 == 0) mbar_arrive(bar);
}

/// Step i ≥ 1 of the consumer main loop: S_i = Q·K_iᵀ (NC keys) and O += P_{i−1}·V_{i−1} (NP keys) in flight
/// together; the softmax of S_i meanwhile. Returns chunk i's ChunkInfo.
template <int NC, int NP>
__device__ __forceinline__ ChunkInfo consumer_step(int i, const Pipeline& pipe, uint32_t q_rows, uint32_t scratch,
                                                   int quad, float scale_log2, float (&s)[BLOCK_N / 2],
                                                   uint32_t (&p)[BLOCK_N / 4], float (&acc)[HEAD_DIM / 2], float& m0,
                                                   float& m1, float& l0, float& l1) {
    const int stage = i % STAGES;
    const int previous = (i - 1) % STAGES;
    mbar_wait(pipe.k_full(stage), (i / STAGES) & 1);
    issue_qk<NC>(s, q_rows, pipe.k_smem + stage * KV_BYTES);
    mbar_wait(pipe.v_full(previous), ((i - 1) / STAGES) & 1);  // V's copy has the Q·Kᵀ issue's time more
    issue_pv<NP>(acc, p, pipe.v_smem + previous * KV_BYTES);
    const ChunkInfo c = pipe.info(stage);
    wgmma_wait<1>();
    fence_registers(s);
    release_stage(pipe.k_empty(stage));
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

/// Chunk 0 of the consumer main loop (N keys): S, softmax.
template <int N>
__device__ __forceinline__ void consumer_first(const Pipeline& pipe, ChunkInfo c, uint32_t q_rows, int quad,
                                                    float scale_log2, float (&s)[BLOCK_N / 2],
                                                    uint32_t (&p)[BLOCK_N / 4], float& m0, float& m1, float& l0,
                                                    float& l1) {
    issue_qk<N>(s, q_rows, pipe.k_smem);
    wgmma_wait<0>();
    fence_registers(s);
    release_stage(pipe.k_empty(0));
    mask_chunk<N>(s, c, quad);
    softmax_first_chunk<N>(s, scale_log2, m0, m1, l0, l1);
    pack_p<N>(p, s);
}

/// The last P·V of the consumer main loop (chunk i − 1, N keys).
template <int N>
__device__ __forceinline__ void consumer_last(int i, const Pipeline& pipe, const uint32_t (&p)[BLOCK_N / 4],
                                              float (&acc)[HEAD_DIM / 2]) {
    const int last = (i - 1) % STAGES;
    mbar_wait(pipe.v_full(last), ((i - 1) / STAGES) & 1);
    issue_pv<N>(acc, p, pipe.v_smem + last * KV_BYTES);
    wgmma_wait<0>();
    fence_registers(acc);
    release_stage(pipe.v_empty(last));
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

    // Chunk 0, then chunks 1, 2, …: each chunk's width is known before its Q·Kᵀ is issued (the previous
    // chunk's ChunkInfo says whether the next is narrow), and each P·V has its chunk's width.
    mbar_wait(pipe.k_full(0), 0);
    ChunkInfo c = pipe.info(0);
    bool narrow = NARROW_CHUNKS && c.is_narrow();
    if (narrow) {
        if constexpr (NARROW_CHUNKS) consumer_first<NARROW_N>(pipe, c, q_rows, quad, scale_log2, s, p, m0, m1, l0, l1);
    } else {
        consumer_first<BLOCK_N>(pipe, c, q_rows, quad, scale_log2, s, p, m0, m1, l0, l1);
    }
    int i = 1;
    for (; !c.last(); ++i) {
        const bool previous_narrow = narrow;
        narrow = NARROW_CHUNKS && c.next_narrow();
        if constexpr (NARROW_CHUNKS) {
            if (narrow || previous_narrow) {
                if (narrow && previous_narrow) {
                    c = consumer_step<NARROW_N, NARROW_N>(i, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                          m1, l0, l1);
                } else if (narrow) {
                    c = consumer_step<NARROW_N, BLOCK_N>(i, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                         m1, l0, l1);
                } else {
                    c = consumer_step<BLOCK_N, NARROW_N>(i, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0,
                                                         m1, l0, l1);
                }
                continue;
            }
        }
        c = consumer_step<BLOCK_N, BLOCK_N>(i, pipe, q_rows, scratch, quad, scale_log2, s, p, acc, m0, m1, l0, l1);
    }
    if (narrow) {
        if constexpr (NARROW_CHUNKS) consumer_last<NARROW_N>(i, pipe, p, acc);
    } else {
        consumer_last<BLOCK_N>(i, pipe, p, acc);
    }
}

}  // namespace sta
