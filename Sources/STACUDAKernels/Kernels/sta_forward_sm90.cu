// Sliding Tile Attention forward pass for Hopper (sm_90a): TMA, wgmma and warp specialisation.
//
// One CTA of 384 threads computes 128 query rows of one (batch, head):
//   warpgroup 0, the producer: one thread issues TMA copies (cp.async.bulk.tensor) of the query block
//     and then of every chunk of BLOCK_N keys (192 for D = 128, 128 for D = 64) of K and V the block
//     attends, in 64 × 64 boxes, into a ring of STAGES
//     shared-memory stages; each copy completes on a "full" mbarrier, each stage is handed back on an
//     "empty" mbarrier. The warpgroup gives its registers away (setmaxnreg.dec).
//   warpgroups 1 and 2, the consumers: each owns 64 query rows. Per chunk it computes S = Q·Kᵀ with
//     wgmma (both operands in shared memory), applies the mask where a chunk needs one, does the online
//     softmax in registers, and accumulates O += P·V with wgmma, P taken from registers. The Q·Kᵀ of
//     chunk i is in flight while P·V of chunk i − 1 runs and while the softmax of chunk i waits. The two
//     consumers take turns issuing their wgmmas (the turn barriers, ping-pong), so that one's
//     softmax overlaps the other's products. O is rescaled only when a row's maximum changed (a warp
//     decides for its rows together).
// Holes: query blocks made only of holes write O = 0 and LSE = −∞ without loading anything; trailing key
// chunks of a padded tile that hold only holes are not loaded; partial chunks take their mask from a
// compile-time table in constant memory (one 64-bit word per padded-axis combination, chunk and lane
// quad). In a tile padded along T and/or H only, the real query rows are packed into fewer blocks that
// the consumers gather themselves, and the tile's last block writes its hole rows.
//
// Semantics (docs: spec §2–3): Q, K, V, O are [B, H, S, D] contiguous, S = NUM_TILES · TILE_VOL +
// TEXT_COUNT, video tokens in tile-contiguous order with holes, then text. A video query of tile q in head
// h attends the real keys of key tiles key_tiles[key_tile_start[w·NUM_TILES + q] ..< key_tile_start[w·
// NUM_TILES + q + 1]] (w = window_of_head[h]) and the valid text keys [V, V + text_valid) of its batch
// row, V = NUM_TILES · TILE_VOL. A valid text query attends every real video key and every valid text key.
// Rows that attend nothing (holes, padding text rows) get O = 0 and LSE = −∞. The valid text length of
// batch row b is a run-time value: text_valid[b], or default_text_valid when text_valid is null, clamped
// into 0 ... TEXT_COUNT; one compiled kernel serves every prompt length. LSE is the natural-log log-sum-exp of the
// scaled scores, float32, [B, H, S]. Accumulation is fp32; P is rounded to the storage type before P·V.
//
// Inputs that are never attended (K and V at holes, padding text rows) must hold finite values (zeros
// from the tile permutation are fine): a zero softmax weight times an infinite value is NaN.
//
// Compile-time constants (-D): the problem's (sta_common.cuh) and the kernel shape (sta_sm90_shape.cuh),
// which the Swift launcher (STAForwardHopperKernel.Shape) chooses; nothing here has a default.
//
// Files: sta_common.cuh (types, problem constants, holes, text), sta_sm90_ptx.cuh (mbarrier, TMA, wgmma
// wrappers), sta_sm90_shape.cuh (blocking, named barriers, register budgets), sta_sm90_work.cuh (work
// decoding, key-chunk cursor), sta_sm90_consumer.cuh (wgmma groups, masks, softmax), sta_sm90_mainloop.cuh
// (pipeline, producer and consumer loops), sta_sm90_epilogue.cuh (normalise, LSE, stores), and this file:
// the kernel, which sets the pipeline up and gives each warpgroup its role.
//
// Kernel parameters (sta_forward_sm90):
//   q_map, k_map, v_map: CUtensorMaps (128 bytes, by value) over the 3D view [B·H][S][D] of Q, K, V:
//     dimensions {D, S, B·H} innermost first, strides {2·D, 2·S·D} bytes, box {64, 64, 1}, element
//     type bf16 or fp16 as compiled, 128-byte swizzle, no interleave, out-of-range elements read as 0.
//   o: [B, H, S, D] 16-bit output; lse: [B, H, S] float32;
//   window_of_head [heads], key_tile_start [windows · NUM_TILES + 1], key_tiles: the attention plan;
//   heads, batch: the tensor shape; scale: the factor applied to Q·Kᵀ (positive and finite);
//   q: the raw Q tensor (the rows of packed query blocks are gathered from it; 16-byte aligned);
//   text_valid: null or [batch] ints, the valid text length of each batch row; default_text_valid: the
//     length of every row when text_valid is null.
// Launch: grid.x = batch · heads · (TEXT_QBLOCKS + NUM_TILES · QBLOCKS_PER_TILE) (see below),
// block.x = STA_THREADS (384), dynamic shared memory STA_SHARED_BYTES (≥ 1024 + (128 + 2 · STAGES · BLOCK_N) ·
// 2 · D bytes).
// Text query blocks come first in grid.x, so that the long ones start early.

#include "sta_common.cuh"
#include "sta_sm90_consumer.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

// ---- The kernel -------------------------------------------------------------------------------------

using namespace sta;

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    sta_forward_sm90(const __grid_constant__ StaTensorMap q_map, const __grid_constant__ StaTensorMap k_map,
                     const __grid_constant__ StaTensorMap v_map, uint16_t* __restrict__ o, float* __restrict__ lse,
                     const int* __restrict__ window_of_head, const int* __restrict__ key_tile_start,
                     const int* __restrict__ key_tiles, int heads, int batch, float scale,
                     const uint16_t* __restrict__ q, const int* __restrict__ text_valid, int default_text_valid) {
    // Barriers: [0] Q full; [1 + s] K full; [1 + S + s] V full; [1 + 2S + s] K empty; [1 + 3S + s] V empty.
    __shared__ __align__(8) uint64_t barriers[1 + 4 * STAGES];
    extern __shared__ unsigned char dynamic_smem[];
    const uint32_t base = (ptx::shared_address(dynamic_smem) + 1023u) & ~1023u;
    const uint32_t q_smem = base;
    const uint32_t k_smem = q_smem + Q_BYTES;
    const uint32_t v_smem = k_smem + STAGES * KV_BYTES;
    const uint32_t bar0 = ptx::shared_address(barriers);
    const uint32_t q_full = bar0;
    auto k_full = [&](int s) { return bar0 + 8u * (1 + s); };
    auto v_full = [&](int s) { return bar0 + 8u * (1 + STAGES + s); };
    auto k_empty = [&](int s) { return bar0 + 8u * (1 + 2 * STAGES + s); };
    auto v_empty = [&](int s) { return bar0 + 8u * (1 + 3 * STAGES + s); };

    const Work work = decode_work(blockIdx.x, heads, batch, window_of_head, key_tile_start, key_tiles, text_valid,
                                  default_text_valid);

    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(k_full(s), 1);
            mbar_init(v_full(s), 1);
            mbar_init(k_empty(s), EMPTY_ARRIVALS);
            mbar_init(v_empty(s), EMPTY_ARRIVALS);
        }
        fence_barrier_init();
    }
    __syncthreads();

    const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);
    const int lane = threadIdx.x % 32;

    if (warpgroup == 0) {
        // ---- Producer ----
        setmaxnreg_dec<24>();
        if (threadIdx.x == 0 && work.any) {
            prefetch_tensor_map(&q_map);
            prefetch_tensor_map(&k_map);
            prefetch_tensor_map(&v_map);
            if (!work.packed) {  // packed query rows are gathered by the consumers
                mbar_expect_tx(q_full, Q_BYTES);
#pragma unroll
                for (int p = 0; p < PANELS; ++p)
#pragma unroll
                    for (int r = 0; r < BLOCK_M; r += BOX_ROWS)
                        tma_load_3d(q_smem + p * Q_PANEL_BYTES + r * 128, &q_map, q_full, p * 64, work.row0 + r,
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
                mbar_wait(k_empty(stage), phase ^ 1);
                mbar_expect_tx(k_full(stage), KV_BYTES);
                load_chunk(k_smem + stage * KV_BYTES, &k_map, k_full(stage), key_row, work.bh);
                mbar_wait(v_empty(stage), phase ^ 1);
                mbar_expect_tx(v_full(stage), KV_BYTES);
                load_chunk(v_smem + stage * KV_BYTES, &v_map, v_full(stage), key_row, work.bh);
            }

        }
        return;
    }

    // ---- Consumers ----
    setmaxnreg_inc<240>();
    const int cw = warpgroup - 1;               // consumer warpgroup: rows 64·cw ..< 64·cw + 64
    const int tid = threadIdx.x % 128;
    const int warp = tid / 32;
    const int group = lane / 4, quad = lane % 4;
    const uint32_t q_rows = q_smem + cw * 64 * 128;  // this warpgroup's 64 rows inside each Q panel
    const float scale_log2 = scale * LOG2E;

    float acc[HEAD_DIM / 2];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 2; ++i) acc[i] = 0.f;
    float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.f, l1 = 0.f;

    auto release = [&](uint32_t bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };

    ChunkCursor cursor;
    cursor.start(work);
    if (work.any && cursor.valid(work)) {
        float s[BLOCK_N / 2];
        uint32_t p[BLOCK_N / 4];
        float corr0, corr1;
        // The two consumer warpgroups take turns issuing their wgmmas (named barriers 3 and 4), so that
        // one's softmax runs while the other's products occupy the tensor cores. Warpgroup 0 goes first.
        const uint32_t my_turn = 3 + cw, other_turn = 4 - cw;
        if (cw == 1) named_barrier_arrive(3, 256);
        auto turn_begin = [&]() { named_barrier_sync(my_turn, 256); };
        auto turn_end = [&](bool last) {
            if (!(last && cw == 1)) named_barrier_arrive(other_turn, 256);
        };
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
            named_barrier_sync(1 + cw, 128);
        } else {
            mbar_wait(q_full, 0);
        }

        // Chunk 0: S, softmax.
        {
            const Chunk c = cursor.chunk(work);
            mbar_wait(k_full(0), 0);
            turn_begin();
            issue_qk(s, q_rows, k_smem);
            turn_end(false);
            wgmma_wait<0>();
            fence_registers(s);
            release(k_empty(0));
            mask_chunk(s, c, quad);
            softmax_chunk(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
            pack_p(p, s);
        }
        cursor.advance(work);
        // Chunk i: S_i = Q·K_iᵀ and O += P_{i−1}·V_{i−1} in flight together; softmax of S_i meanwhile.
        int i = 1;
        for (; cursor.valid(work); ++i, cursor.advance(work)) {
            const int stage = i % STAGES;
            const int previous = (i - 1) % STAGES;
            const Chunk c = cursor.chunk(work);
            mbar_wait(k_full(stage), (i / STAGES) & 1);
            mbar_wait(v_full(previous), ((i - 1) / STAGES) & 1);
            turn_begin();
            issue_qk(s, q_rows, k_smem + stage * KV_BYTES);
            issue_pv(acc, p, v_smem + previous * KV_BYTES);
            turn_end(false);
            wgmma_wait<1>();
            fence_registers(s);
            release(k_empty(stage));
            mask_chunk(s, c, quad);
            softmax_chunk(s, scale_log2, m0, m1, l0, l1, corr0, corr1);
            wgmma_wait<0>();
            fence_registers(acc);
            fence_registers(p);
            release(v_empty(previous));
            // Once the running maxima settle, most chunks leave them unchanged: skip the multiplications
            // by 1 (a warp's rows decide together).
            if (__any_sync(0xffffffffu, corr0 != 1.f || corr1 != 1.f)) rescale(acc, corr0, corr1);
            pack_p(p, s);
        }
        {
            const int last = (i - 1) % STAGES;
            mbar_wait(v_full(last), ((i - 1) / STAGES) & 1);
            turn_begin();
            issue_pv(acc, p, v_smem + last * KV_BYTES);
            turn_end(true);
            wgmma_wait<0>();
            fence_registers(acc);
            release(v_empty(last));
        }
    }

    // ---- Epilogue: normalise, write LSE, stage O through this warpgroup's Q rows, store ----
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
    const bool valid0 = local0 < work.rows && l0 > 0.f &&
                        (work.packed || query_row_valid(row_of(local0), work.text_query, work.text_valid));
    const bool valid1 = local1 < work.rows && l1 > 0.f &&
                        (work.packed || query_row_valid(row_of(local1), work.text_query, work.text_valid));
    const float inv0 = valid0 ? 1.f / l0 : 0.f;
    const float inv1 = valid1 ? 1.f / l1 : 0.f;
    const long long slice = static_cast<long long>(work.bh) * SEQ;
    if (quad == 0) {
        if (local0 < work.rows) lse[slice + row_of(local0)] = valid0 ? (m0 + ptx::log2_approx(l0)) * LN2 : neg_inf();
        if (local1 < work.rows) lse[slice + row_of(local1)] = valid1 ? (m1 + ptx::log2_approx(l1)) * LN2 : neg_inf();
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
    named_barrier_sync(1 + cw, 128);
    constexpr int CHUNKS_PER_ROW = HEAD_DIM / 8;  // 16-byte pieces
#pragma unroll
    for (int it = 0; it < 64 * CHUNKS_PER_ROW / 128; ++it) {
        const int index = tid + it * 128;
        const int r = index / CHUNKS_PER_ROW;
        const int piece = index % CHUNKS_PER_ROW;
        const int local = cw * 64 + r;
        if (local < work.rows) {
            const uint32_t from = q_rows + (piece / 8) * Q_PANEL_BYTES + r * 128 + (((piece % 8) ^ (r % 8)) * 16);
            uint32_t x, y, z, w;
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                         : "=r"(x), "=r"(y), "=r"(z), "=r"(w)
                         : "r"(from)
                         : "memory");
            uint16_t* to = o + (slice + row_of(local)) * HEAD_DIM + piece * 8;
            asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(to), "r"(x), "r"(y), "r"(z), "r"(w)
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
