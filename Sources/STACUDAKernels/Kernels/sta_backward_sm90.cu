// Sliding Tile Attention backward pass for Hopper (sm_90a): TMA, wgmma, warp specialisation, and the
// query gradient accumulated in float32 by bulk reductions.
//
// Semantics (spec §2-3), as the portable backward (sta_backward_sm80.cu): Q, K, V, O, dO are [B, H, S, D]
// contiguous 16-bit tensors, LSE [B, H, S] float32 (natural log) as the forward wrote it. With
// P = exp(scale·QKᵀ − L) over the attended pairs and Δ_i = Σ_d dO_id·O_id:
//     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
// dQ, dK, dV are [B, H, S, D] in the input's 16-bit type (accumulated in fp32, rounded once), every row
// written: rows that attend nothing (holes, padding text, rows whose LSE is −∞ or NaN) get dQ = 0, keys
// nothing attends get dK = dV = 0. Text validity per batch row as the forward: text_valid[b] or, when
// text_valid is null, default_text_valid, clamped into 0 ... TEXT_COUNT.
// Inputs at holes and padding text rows are read (whole TMA boxes) but never contribute: they must hold
// finite values, as the forward requires of K and V there (the tile permutation writes zeros).
//
// Three kernels, launched in this order on one stream:
//   sta_backward_prepare_sm90  per row: LSE2 = L·log2(e) and Δ (+∞ and 0 for rows that attend nothing),
//                              and zeros the row of the float32 dQ accumulator. Block = PREP_THREADS,
//                              grid = ⌈B·H·S / (PREP_THREADS / (D / 8))⌉.
//   sta_backward_sm90          one CTA of 384 threads per (key block of BLOCK_N = 128 keys inside one key
//                              tile or the text, head, batch), text key blocks of every (batch, head) first
//                              (they stream every query). Warpgroup 0, the producer: one thread loads the
//                              key block's K and V once and then Q and dO of every query chunk (64 rows)
//                              that attends the block into a ring of STAGES stages (TMA, 64 × 64 boxes,
//                              128-byte swizzle); one warp copies the chunk's LSE2 and Δ next to them.
//                              Warpgroups 1 and 2, the consumers, own 64 key rows each: per chunk
//                              Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (wgmma, shared-memory operands), Pᵀ and dSᵀ in
//                              registers, dV += Pᵀ dO and dK += dSᵀ Q (wgmma with A from registers), dSᵀ
//                              into shared memory, then dQ = dS K, each warpgroup half of the head
//                              dimension, staged in shared memory and added into the float32 accumulator
//                              by one bulk reduction (cp.reduce.async.bulk .add.f32) per chunk. dK and dV
//                              are written once at the end, staged through the K and V buffers.
//   sta_backward_dq_sm90       per row: dQ = scale · accumulator in the input type (0 for rows that attend
//                              nothing). Block = PREP_THREADS, grid as the prepare kernel's.
// The query chunks of a key block are the query tiles of the plan's inverse lists (query_tile_start /
// query_tiles, CSR over window · NUM_TILES + key tile; every tile for text keys), then the valid text.
//
// Determinism: the float32 additions into the dQ accumulator happen in whatever order the CTAs reach
// them, so dQ may differ in its last bits from run to run; dK and dV have one owner per row and are
// deterministic. The portable backward is deterministic throughout.
//
// Workspace (the caller's): LSE2 and Δ (B·H·S floats each) and the dQ accumulator ((B·H·S + CHUNK) · D
// floats: a chunk at the very end may run past the last row; its extra rows receive zeros), each at a
// 256-byte boundary. The accumulator's rows hold their columns permuted (dq_permuted_column).
//
// Kernel parameters (sta_backward_sm90):
//   q_map, k_map, v_map, do_map: CUtensorMaps over the 3D views [B·H][S][D] of Q, K, V, dO as the forward
//     kernel's (box {64, 64, 1}, 128-byte swizzle, rows past S read as 0);
//   lse2, delta, dq_accum: the workspace arrays; dk, dv: the outputs;
//   window_of_head [heads], query_tile_start [windows · NUM_TILES + 1], query_tiles: the inverse plan;
//   visit_of_head [heads]: each head's visit order of its key tiles (`visited_tile`, sta_common.cuh);
//   heads, batch: the tensor shape; scale: the factor applied to Q·Kᵀ; text_valid, default_text_valid.
// Launch: grid.x = batch · heads · (TEXT_KBLOCKS + NUM_TILES · KBLOCKS_PER_TILE), block.x = 384, dynamic
// shared memory STA_BWD_SHARED_BYTES.
//
// Files: sta_common.cuh, sta_sm90_ptx.cuh (shared with the forward), sta_sm90_bwd_shape.cuh (blocking,
// shared-memory map, barriers, registers), sta_sm90_bwd_work.cuh (key block, query-chunk cursor),
// sta_sm90_bwd_consumer.cuh (products, recomputation, stores), sta_sm90_bwd_mainloop.cuh (pipeline,
// producer and consumer loops), sta_sm90_bwd_epilogue.cuh (dK, dV), and this file.

#include "sta_common.cuh"
#include "sta_sm90_bwd_consumer.cuh"
#include "sta_sm90_bwd_epilogue.cuh"
#include "sta_sm90_bwd_mainloop.cuh"
#include "sta_sm90_bwd_shape.cuh"
#include "sta_sm90_bwd_work.cuh"
#include "sta_sm90_ptx.cuh"

namespace sta {

constexpr int PREP_THREADS = 256;
constexpr int ROW_UNITS = HEAD_DIM / 8;  // threads per row in the row kernels: 8 values each
constexpr int PREP_ROWS_PER_BLOCK = PREP_THREADS / ROW_UNITS;

namespace ptx {
// A 16-bit storage value as float.
__device__ __forceinline__ float widen(uint32_t bits) {
#if defined(STA_BF16)
    return __uint_as_float(bits << 16);
#else
    float y;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(y) : "h"(static_cast<unsigned short>(bits)));
    return y;
#endif
}
}  // namespace ptx

/// Whether flat row `row` (batch · heads · S + position) is a real query: a video position that is no
/// hole, or one of its batch row's valid text positions.
__device__ __forceinline__ bool real_row(long long row, int heads, const int* text_valid, int default_text_valid) {
    const int position = static_cast<int>(row % SEQ);
    if (position < VIDEO_TOKENS) return !is_hole(position / TILE_VOL, position % TILE_VOL);
    const int batch = static_cast<int>(row / (static_cast<long long>(heads) * SEQ));
    return position - VIDEO_TOKENS < row_text_valid(text_valid, default_text_valid, batch);
}

}  // namespace sta

using namespace sta;

// ---- Kernel 0: LSE in log2 units, Δ, and the zeroed dQ accumulator ------------------------------------

extern "C" __global__ void __launch_bounds__(sta::PREP_THREADS)
    sta_backward_prepare_sm90(const uint16_t* __restrict__ o, const uint16_t* __restrict__ dout,
                              const float* __restrict__ lse, float* __restrict__ lse2, float* __restrict__ delta,
                              float* __restrict__ dq_accum, long long rows, int heads, const int* text_valid,
                              int default_text_valid) {
    const int unit = threadIdx.x % ROW_UNITS;
    const long long row = static_cast<long long>(blockIdx.x) * PREP_ROWS_PER_BLOCK + threadIdx.x / ROW_UNITS;
    const bool inside = row < rows;
    const float l = inside ? lse[row] : neg_inf();
    const bool attends = inside && real_row(row, heads, text_valid, default_text_valid) && l != neg_inf() && l == l;
    float sum = 0.f;
    if (attends) {
        const uint4 a = *reinterpret_cast<const uint4*>(o + row * HEAD_DIM + unit * 8);
        const uint4 b = *reinterpret_cast<const uint4*>(dout + row * HEAD_DIM + unit * 8);
        const uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            sum += ptx::widen(av[i] & 0xffffu) * ptx::widen(bv[i] & 0xffffu);
            sum += ptx::widen(av[i] >> 16) * ptx::widen(bv[i] >> 16);
        }
    }
#pragma unroll
    for (int step = 1; step < ROW_UNITS; step <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, step);
    if (inside) {
        float4* accum = reinterpret_cast<float4*>(dq_accum + row * HEAD_DIM + unit * 8);
        accum[0] = make_float4(0.f, 0.f, 0.f, 0.f);
        accum[1] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (unit == 0) {
            lse2[row] = attends ? l * LOG2E : pos_inf();
            delta[row] = attends ? sum : 0.f;
        }
    }
}

// ---- Kernel 1: dK and dV per key block, dQ contributions into the accumulator --------------------------

extern "C" __global__ void __launch_bounds__(sta::THREADS, 1)
    sta_backward_sm90(const __grid_constant__ StaTensorMap q_map, const __grid_constant__ StaTensorMap k_map,
                      const __grid_constant__ StaTensorMap v_map, const __grid_constant__ StaTensorMap do_map,
                      const float* __restrict__ lse2, const float* __restrict__ delta, float* __restrict__ dq_accum,
                      uint16_t* __restrict__ dk, uint16_t* __restrict__ dv, const int* __restrict__ window_of_head,
                      const int* __restrict__ query_tile_start, const int* __restrict__ query_tiles,
                      const int* __restrict__ visit_of_head, int heads, int batch, float scale,
                      const int* __restrict__ text_valid, int default_text_valid) {
    __shared__ __align__(8) uint64_t barriers[PIPELINE_BARRIERS];
    extern __shared__ unsigned char dynamic_smem[];
    Pipeline pipe;
    pipe.base = (ptx::shared_address(dynamic_smem) + 1023u) & ~1023u;  // 128-byte swizzle atoms: 1 KiB aligned
    pipe.bar0 = ptx::shared_address(barriers);

    const KeyWork work = decode_key_work(blockIdx.x, heads, batch, window_of_head, query_tile_start, query_tiles,
                                         visit_of_head, text_valid, default_text_valid);
    // A block of holes and padding text only: its gradients are zero, nothing to load.
    const bool real = threadIdx.x < BLOCK_N && key_row_real(work, threadIdx.x);
    if (!__syncthreads_or(real)) {
        zero_key_rows(work, dk, dv);
        return;
    }

    if (threadIdx.x == 0) pipe.init();
    __syncthreads();

    const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / WARPGROUP_THREADS, 0);
    if (warpgroup == 0) {
        // The producer: thread 0 copies Q, dO (and K, V once), warp 1 the statistics; the warpgroup gives
        // its registers to the consumers.
        setmaxnreg_dec<PRODUCER_REGISTERS>();
        const int warp = threadIdx.x / 32;
        if (threadIdx.x == 0) producer_copies(work, pipe, &q_map, &k_map, &v_map, &do_map);
        if (warp == 1) producer_statistics(work, pipe, lse2, delta);
        return;
    }

    // The consumers: warpgroup cw owns key rows 64·cw ..< 64·cw + 64 of the block.
    setmaxnreg_inc<CONSUMER_REGISTERS>();
    const int cw = warpgroup - 1;
    float acc_dk[HEAD_DIM / 2], acc_dv[HEAD_DIM / 2];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 2; ++i) acc_dk[i] = acc_dv[i] = 0.f;
    consumer_mainloop(work, pipe, cw, scale * LOG2E, dq_accum, acc_dk, acc_dv);
    epilogue(work, pipe.k_smem(), pipe.v_smem(), cw, acc_dk, acc_dv, scale, dk, dv);
}

// ---- Kernel 2: dQ in the input type --------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(sta::PREP_THREADS)
    sta_backward_dq_sm90(const float* __restrict__ dq_accum, const float* __restrict__ lse2, uint16_t* __restrict__ dq,
                         long long rows, float scale) {
    const int unit = threadIdx.x % ROW_UNITS;
    const long long row = static_cast<long long>(blockIdx.x) * PREP_ROWS_PER_BLOCK + threadIdx.x / ROW_UNITS;
    if (row >= rows) return;
    uint4 out = make_uint4(0u, 0u, 0u, 0u);
    if (lse2[row] != pos_inf()) {
        // Columns 8·unit ..< 8·unit + 8 lie in two adjacent 16-byte groups of the permuted row.
        const float4* from = reinterpret_cast<const float4*>(dq_accum + row * HEAD_DIM + dq_permuted_column(row, unit * 8));
        const float4 a = from[0], b = from[1];
        out = make_uint4(ptx::pack2(a.x * scale, a.y * scale), ptx::pack2(a.z * scale, a.w * scale),
                         ptx::pack2(b.x * scale, b.y * scale), ptx::pack2(b.z * scale, b.w * scale));
    }
    *reinterpret_cast<uint4*>(dq + row * HEAD_DIM + unit * 8) = out;
}
