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
//     chunk i is issued with the P·V of chunk i − 1 (V_{i−1} is waited for after Q·K_iᵀ is issued, which
//     gives V's copy that issue's time), and the softmax of chunk i runs while that P·V
//     does (a shared-memory store keeps ptxas from moving the P·V wait ahead of it); the two consumers
//     issue independently, and the tensor cores interleave their products. After the first chunk the
//     softmax does not look for the chunk's row maxima: it takes the exponentials against the running
//     maxima, which move (and O is rescaled) only when a row's sum shows its scores rose by about 8 in
//     log2 units; an overflow there leaves the row's LSE NaN for the exact-rows pass.
//     The exponentials come in chained groups (EXP_GROUP), so that the other warpgroup's wgmmas issue between
//     them: a warp that streams MUFU.EX2 holds up the wgmma issue on its scheduler.
// Holes: query blocks made only of holes write O = 0 and LSE = −∞ without loading anything; trailing key
// chunks of a padded tile that hold only holes are not loaded; partial chunks take their mask from a
// compile-time table in constant memory (one 64-bit word per padded-axis combination, chunk and lane
// quad). In a tile padded along T and/or H only, the real query rows are packed into fewer blocks that
// the consumers gather themselves, and the tile's last block writes its hole rows. A block of at most 64
// rows is computed by one consumer warpgroup alone. The keys of a tile padded along H alone come in packed
// chunks of real keys (STA_KEY_SLICES t-slices each), which need no mask.
// Chunk widths: BLOCK_N, and NARROW_N for packed chunks or chunks whose keys lie in their first 64 (the
// text's last); the producer publishes each chunk's ChunkInfo (width, mask, last) in its stage.
//
// Semantics (docs: spec §2–3): Q, K, V, O are [B, H, S, D] contiguous, S = NUM_TILES · TILE_VOL +
// TEXT_COUNT, video tokens in tile-contiguous order with holes, then text. A video query of tile q in head
// h attends the real keys of key tiles key_tiles[key_tile_start[w·NUM_TILES + q] ..< key_tile_start[w·
// NUM_TILES + q + 1]] (w = window_of_head[h]) and the valid text keys [V, V + text_valid) of its batch
// row, V = NUM_TILES · TILE_VOL. A valid text query attends every real video key and every valid text key.
// Rows that attend nothing (holes, padding text rows) get O = 0 and LSE = −∞. The valid text length of
// batch row b is a run-time value: text_valid[b], or default_text_valid when text_valid is null, clamped
// into 0 ... TEXT_COUNT; one compiled kernel serves every prompt length. LSE is the natural-log log-sum-exp
// of the scaled scores, float32, [B, H, S]. Accumulation is fp32; P is rounded to the storage type before P·V.
//
// NaN or ±inf in the q of a row, or in the k or v of a key the row attends, makes that row's O and LSE NaN
// (as PyTorch does). Inputs that are never attended (K and V at holes, padding text rows) must hold finite
// values (zeros from the tile permutation are fine): a zero softmax weight times an infinite value is NaN.
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
//   visit_of_head [heads]: each head's visit order of its tiles (`visited_tile`, sta_common.cuh);
//   heads, batch: the tensor shape; scale: the factor applied to Q·Kᵀ (positive and finite);
//   q: the raw Q tensor (the rows of packed query blocks are gathered from it; 16-byte aligned);
//   text_valid: null or [batch] ints, the valid text length of each batch row; default_text_valid: the
//     length of every row when text_valid is null;
//   k_slices, v_slices: with STA_KEY_SLICES = k > 0, CUtensorMaps over the 4D view [B·H][S / SLICE][SLICE]
//     [D] of K and V (SLICE = TILE_H · TILE_W: dimensions {D, SLICE, ⌊S / SLICE⌋, B·H}, box {64, REAL_H ·
//     TILE_W, k, 1}, otherwise as q_map); with 0, unused (any map).
// Launch: grid.x = batch · heads · (TEXT_QBLOCKS + NUM_TILES · QBLOCKS_PER_TILE) (see below),
// block.x = STA_THREADS (384), dynamic shared memory STA_SHARED_BYTES (≥ 1024 + (128 + 2 · STAGES · BLOCK_N) ·
// 2 · D bytes).
// Text query blocks come first in grid.x, so that the long ones start early; then each head's video blocks
// tile by tile in the head's visit order (`visited_tile`, sta_common.cuh), which keeps the K and V tiles
// the CTAs in flight read in L2.

#include "sta_common.cuh"
#include "sta_sm90_consumer.cuh"
#include "sta_sm90_epilogue.cuh"
#include "sta_sm90_mainloop.cuh"
#include "sta_sm90_ptx.cuh"
#include "sta_sm90_shape.cuh"
#include "sta_sm90_work.cuh"

// ---- The kernel -------------------------------------------------------------------------------------

using namespace sta;

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    sta_forward_sm90(const __grid_constant__ StaTensorMap q_map, const __grid_constant__ StaTensorMap k_map,
                     const __grid_constant__ StaTensorMap v_map, uint16_t* __restrict__ o, float* __restrict__ lse,
                     const int* __restrict__ window_of_head, const int* __restrict__ key_tile_start,
                     const int* __restrict__ key_tiles, const int* __restrict__ visit_of_head, int heads, int batch,
                     float scale,
                     const uint16_t* __restrict__ q, const int* __restrict__ text_valid, int default_text_valid,
                     const __grid_constant__ StaTensorMap k_slices, const __grid_constant__ StaTensorMap v_slices) {
    __shared__ __align__(8) uint64_t barriers[PIPELINE_BARRIERS];
    __shared__ uint32_t chunk_info[STAGES];
    extern __shared__ unsigned char dynamic_smem[];
    Pipeline pipe;
    pipe.q_smem = (ptx::shared_address(dynamic_smem) + 1023u) & ~1023u;  // 128-byte swizzle atoms: 1 KiB aligned
    pipe.k_smem = pipe.q_smem + Q_BYTES;
    pipe.v_smem = pipe.k_smem + STAGES * KV_BYTES;
    pipe.bar0 = ptx::shared_address(barriers);
    pipe.info0 = ptx::shared_address(chunk_info);

    const Work work = decode_work(blockIdx.x, heads, batch, window_of_head, key_tile_start, key_tiles, visit_of_head,
                                  text_valid, default_text_valid);

    if (threadIdx.x == 0) pipe.init(computing_consumers(work));
    __syncthreads();

    const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / WARPGROUP_THREADS, 0);
    if (warpgroup == 0) {
        // The producer: one thread issues every copy; the warpgroup gives its registers to the consumers.
        setmaxnreg_dec<PRODUCER_REGISTERS>();
        if (threadIdx.x == 0 && work.any) producer_mainloop(work, pipe, &q_map, &k_map, &v_map, &k_slices, &v_slices);
        return;
    }

    // The consumers: warpgroup cw owns rows 64·cw ..< 64·cw + 64 of the block.
    setmaxnreg_inc<CONSUMER_REGISTERS>();
    const int cw = warpgroup - 1;
    const uint32_t q_rows = pipe.q_smem + cw * 64 * 128;  // this warpgroup's 64 rows inside each Q panel
    float acc[HEAD_DIM / 2];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 2; ++i) acc[i] = 0.f;
    float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.f, l1 = 0.f;
    consumer_mainloop(work, pipe, cw, q_rows, scale * LOG2E, q, acc, m0, m1, l0, l1);
    epilogue(work, cw, q_rows, acc, m0, m1, l0, l1, o, lse);
}
