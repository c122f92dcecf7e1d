// Sliding Tile Attention forward pass for Hopper (sm_90a): TMA, wgmma and warp specialisation.
//
// One CTA of 384 threads computes 128 query rows of one (batch, head):
//   warpgroup 0, the producer: one thread issues TMA copies (cp.async.bulk.tensor) of the query block
//     and then of every chunk of BLOCK_N keys (192 for D = 128, 128 for D = 64) of K and V the block
//     attends, in 64 × 64 boxes, into a ring of STA_STAGES
//     shared-memory stages; each copy completes on a "full" mbarrier, each stage is handed back on an
//     "empty" mbarrier. The warpgroup gives its registers away (setmaxnreg.dec).
//   warpgroups 1 and 2, the consumers: each owns 64 query rows. Per chunk it computes S = Q·Kᵀ with
//     wgmma (both operands in shared memory), applies the mask where a chunk needs one, does the online
//     softmax in registers, and accumulates O += P·V with wgmma, P taken from registers. The Q·Kᵀ of
//     chunk i is in flight while P·V of chunk i − 1 runs and while the softmax of chunk i waits. The two
//     consumers take turns issuing their wgmmas (named barriers 3 and 4, STA_PINGPONG), so that one's
//     softmax overlaps the other's products. O is rescaled only when a row's maximum changed (a warp
//     decides for its rows together).
// Holes: query blocks made only of holes write O = 0 and LSE = −∞ without loading anything; trailing key
// chunks of a padded tile that hold only holes are not loaded; partial chunks take their mask from a
// compile-time table in constant memory (one 64-bit word per padded-axis combination, chunk and lane
// quad). In a tile padded along T and/or H only, the real query rows are packed into fewer blocks that
// the consumers gather themselves, and the tile's last block writes its hole rows (STA_PACK_QUERIES).
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
// Compile-time constants (-D): STA_HEAD_DIM (64 or 128); STA_BF16=1 or STA_FP16=1; STA_CANVAS_T/H/W,
// STA_TILE_T/H/W, STA_GRID_T/H/W (rank < 3: leading axes 1); STA_TEXT_COUNT; optional
// STA_BLOCK_N (128 or 192; default 192 for D = 128, 128 for D = 64), STA_STAGES (K/V ring depth;
// default 2 for D = 128, 4 for D = 64), STA_PINGPONG, STA_SKIP_RESCALE, STA_MASK_TABLE, STA_PACK_QUERIES
// (each default 1; 0 turns the feature off).
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
// block.x = 384, dynamic shared memory STA_SMEM_BYTES (= 1024 + (128 + 2 · STAGES · BLOCK_N) · 2 · D bytes).
// Text query blocks come first in grid.x, so that the long ones start early.

#if !defined(STA_HEAD_DIM) || !defined(STA_CANVAS_T) || !defined(STA_CANVAS_H) || !defined(STA_CANVAS_W) || \
    !defined(STA_TILE_T) || !defined(STA_TILE_H) || !defined(STA_TILE_W) || !defined(STA_GRID_T) ||       \
    !defined(STA_GRID_H) || !defined(STA_GRID_W) || !defined(STA_TEXT_COUNT)
#error "sta_forward_sm90.cu needs STA_HEAD_DIM, STA_CANVAS_*, STA_TILE_*, STA_GRID_*, STA_TEXT_COUNT"
#endif

#if defined(STA_BF16) && STA_BF16
#define STA_MMA_TYPE "bf16"
#define STA_CVT_PACK "cvt.rn.bf16x2.f32"
#elif defined(STA_FP16) && STA_FP16
#define STA_MMA_TYPE "f16"
#define STA_CVT_PACK "cvt.rn.f16x2.f32"
#else
#error "define STA_BF16=1 or STA_FP16=1"
#endif

#if STA_HEAD_DIM != 64 && STA_HEAD_DIM != 128
#error "STA_HEAD_DIM must be 64 or 128"
#endif

#ifndef STA_PINGPONG
#define STA_PINGPONG 1
#endif

#ifndef STA_BLOCK_N
#if STA_HEAD_DIM == 128
#define STA_BLOCK_N 192
#else
#define STA_BLOCK_N 128
#endif
#endif

// Masks of partial chunks from a compile-time table (one 64-bit word per padded-axis combination, chunk
// and lane quad) instead of per-element arithmetic.
#ifndef STA_MASK_TABLE
#define STA_MASK_TABLE 1
#endif

// Query packing: in a tile padded along T and/or H only, the holes are whole lines of TILE_W tokens; its
// real rows are gathered into ceil(real / 128) query blocks (loaded by the consumers, not by TMA), and the
// tile's last unit writes O = 0 / LSE = −∞ to its hole rows.
#ifndef STA_PACK_QUERIES
#define STA_PACK_QUERIES 1
#endif

#ifndef STA_SKIP_RESCALE
#define STA_SKIP_RESCALE 1
#endif

#ifndef STA_STAGES
#if STA_HEAD_DIM == 128
#define STA_STAGES 2
#else
#define STA_STAGES 4
#endif
#endif

namespace sta {

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;

// ---- Geometry --------------------------------------------------------------------------------------

constexpr int HEAD_DIM = STA_HEAD_DIM;
constexpr int CANVAS_T = STA_CANVAS_T, CANVAS_H = STA_CANVAS_H, CANVAS_W = STA_CANVAS_W;
constexpr int TILE_T = STA_TILE_T, TILE_H = STA_TILE_H, TILE_W = STA_TILE_W;
constexpr int GRID_T = STA_GRID_T, GRID_H = STA_GRID_H, GRID_W = STA_GRID_W;
constexpr int TEXT_COUNT = STA_TEXT_COUNT;  // text positions; how many are valid is a run-time value per row

constexpr int TILE_VOL = TILE_T * TILE_H * TILE_W;
constexpr int NUM_TILES = GRID_T * GRID_H * GRID_W;
constexpr int VIDEO_TOKENS = NUM_TILES * TILE_VOL;  // holes included
constexpr int SEQ = VIDEO_TOKENS + TEXT_COUNT;

constexpr bool PAD_T = GRID_T * TILE_T > CANVAS_T;
constexpr bool PAD_H = GRID_H * TILE_H > CANVAS_H;
constexpr bool PAD_W = GRID_W * TILE_W > CANVAS_W;
constexpr bool HAS_HOLES = PAD_T || PAD_H || PAD_W;
// Tokens of the last tile along an axis that are real: offsets at or past this are holes there.
constexpr int REAL_T = CANVAS_T - (GRID_T - 1) * TILE_T;
constexpr int REAL_H = CANVAS_H - (GRID_H - 1) * TILE_H;
constexpr int REAL_W = CANVAS_W - (GRID_W - 1) * TILE_W;

static_assert(TEXT_COUNT >= 0, "STA_TEXT_COUNT must not be negative");
static_assert(REAL_T >= 1 && REAL_T <= TILE_T && REAL_H >= 1 && REAL_H <= TILE_H && REAL_W >= 1 &&
                  REAL_W <= TILE_W,
              "STA_GRID_* must be ceil(STA_CANVAS_* / STA_TILE_*)");

// ---- Blocking ---------------------------------------------------------------------------------------

constexpr int BLOCK_M = 128;        // query rows per CTA: two consumer warpgroups of 64
constexpr int BLOCK_N = STA_BLOCK_N;  // keys per chunk
constexpr int STAGES = STA_STAGES;
constexpr int BOX_ROWS = 64;                         // rows of one TMA box (64 columns × 64 rows)
constexpr int PANELS = HEAD_DIM / 64;                // 64-column panels (one 128-byte swizzle span each)
constexpr int Q_PANEL_BYTES = BLOCK_M * 128;         // BLOCK_M rows of 128 bytes
constexpr int KV_PANEL_BYTES = BLOCK_N * 128;        // BLOCK_N rows of 128 bytes
constexpr int Q_BYTES = PANELS * Q_PANEL_BYTES;      // the query block
constexpr int KV_BYTES = PANELS * KV_PANEL_BYTES;    // one chunk of K or V
constexpr int SMEM_BYTES = 1024 + Q_BYTES + 2 * STAGES * KV_BYTES;
static_assert(BLOCK_N == 128 || BLOCK_N == 192, "STA_BLOCK_N must be 128 or 192");

constexpr int CHUNKS_PER_TILE = (TILE_VOL + BLOCK_N - 1) / BLOCK_N;
constexpr int QBLOCKS_PER_TILE = (TILE_VOL + BLOCK_M - 1) / BLOCK_M;
constexpr int TEXT_QBLOCKS = (TEXT_COUNT + BLOCK_M - 1) / BLOCK_M;
// Which chunks can need a mask: video chunks when tiles hold holes or end in a partial chunk; text chunks
// whenever there is text (the valid length, hence the last chunk's length, is known at run time only).
constexpr bool VIDEO_MASKS = HAS_HOLES || (TILE_VOL % BLOCK_N != 0);
constexpr bool TEXT_MASKS = TEXT_COUNT > 0;

static_assert(STAGES >= 2 && SMEM_BYTES <= 232448, "STA_STAGES does not fit in shared memory");

constexpr int THREADS = 384;
constexpr int EMPTY_ARRIVALS = 8;  // one per consumer warp
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000u); }
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

}  // namespace sta

#define STA_SMEM_BYTES (sta::SMEM_BYTES)

/// A CUtensorMap, passed by value (cuda.h is not available to NVRTC).
struct __align__(64) StaTensorMap {
    unsigned long long opaque[16];
};

namespace sta {

// ---- PTX wrappers -----------------------------------------------------------------------------------

__device__ __forceinline__ u32 smem_address(const void* pointer) {
    return static_cast<u32>(__cvta_generic_to_shared(pointer));
}

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbar_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

__device__ __forceinline__ bool mbar_try_wait(u32 bar, u32 parity) {
    u32 done;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
    return done != 0;
}

/// Waits until the phase of parity `parity` of the barrier has completed.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    while (!mbar_try_wait(bar, parity)) {
    }
}

/// TMA: copies the box at (c0, c1, c2) of `map` to shared memory at `dst`; completes on `bar`.
__device__ __forceinline__ void tma_load_3d(u32 dst, const StaTensorMap* map, u32 bar, int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
        "%5}], [%2];\n" ::"r"(dst),
        "l"(reinterpret_cast<u64>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

__device__ __forceinline__ void prefetch_tensor_map(const StaTensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<u64>(map)) : "memory");
}

template <u32 Count>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Count));
}

template <u32 Count>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Count));
}

__device__ __forceinline__ void named_barrier_sync(u32 id, u32 threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void named_barrier_arrive(u32 id, u32 threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

/// Tells the compiler that `x` may have changed here (an asynchronous wgmma wrote it).
template <int N>
__device__ __forceinline__ void fence_registers(float (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(x[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_registers(u32 (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(x[i])::"memory");
}

/// A wgmma shared-memory matrix descriptor with the 128-byte swizzle. `address` is a shared-memory byte
/// address inside a 1024-byte-aligned swizzle atom; `leading` and `stride` are the leading- and
/// stride-dimension byte offsets.
__device__ __forceinline__ u64 smem_descriptor(u32 address, u32 leading, u32 stride) {
    return static_cast<u64>((address & 0x3FFFF) >> 4) | (static_cast<u64>(leading >> 4) << 16) |
           (static_cast<u64>(stride >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float fast_log2(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/// Two floats rounded to the storage type, `low` in bits 0–15.
__device__ __forceinline__ u32 pack2(float low, float high) {
    u32 r;
    asm(STA_CVT_PACK " %0, %1, %2;\n" : "=r"(r) : "f"(high), "f"(low));
    return r;
}

// ---- wgmma (generated) ----
// GENERATED by scripts/hopper/gen_wgmma.py: begin
template <int ScaleD>
__device__ __forceinline__ void wgmma_ss_m64n64k16(float (&d)[32], u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." STA_MMA_TYPE "." STA_MMA_TYPE " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(desc_a), "l"(desc_b), "r"(ScaleD));
}

template <int ScaleD>
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." STA_MMA_TYPE "." STA_MMA_TYPE " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(desc_a), "l"(desc_b), "r"(ScaleD));
}

template <int ScaleD>
__device__ __forceinline__ void wgmma_ss_m64n192k16(float (&d)[96], u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n192k16.f32." STA_MMA_TYPE "." STA_MMA_TYPE " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, %96, %97, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
        : "l"(desc_a), "l"(desc_b), "r"(ScaleD));
}

__device__ __forceinline__ void wgmma_rs_m64n64k16(float (&d)[32], u32 a0, u32 a1, u32 a2, u32 a3, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." STA_MMA_TYPE "." STA_MMA_TYPE " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "r"(1));
}

__device__ __forceinline__ void wgmma_rs_m64n128k16(float (&d)[64], u32 a0, u32 a1, u32 a2, u32 a3, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." STA_MMA_TYPE "." STA_MMA_TYPE " "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "r"(1));
}

// GENERATED by scripts/hopper/gen_wgmma.py: end

// ---- Holes ------------------------------------------------------------------------------------------

/// Which axes of `tile` are the padded last tile of their axis (bit 0: t, 1: h, 2: w).
__host__ __device__ constexpr int boundary_axes(int tile) {
    return ((PAD_T && tile / (GRID_H * GRID_W) == GRID_T - 1) ? 1 : 0) |
           ((PAD_H && (tile / GRID_W) % GRID_H == GRID_H - 1) ? 2 : 0) | ((PAD_W && tile % GRID_W == GRID_W - 1) ? 4 : 0);
}

/// Whether offset `offset` inside a tile whose padded axes are `axes` is a hole.
__host__ __device__ constexpr bool is_hole(int offset, int axes) {
    return (PAD_T && (axes & 1) && offset / (TILE_H * TILE_W) >= REAL_T) ||
           (PAD_H && (axes & 2) && (offset / TILE_W) % TILE_H >= REAL_H) ||
           (PAD_W && (axes & 4) && offset % TILE_W >= REAL_W);
}

/// Whether the tile offsets [first, first + count) are all holes under `axes`.
__host__ __device__ constexpr bool all_holes(int first, int count, int axes) {
    for (int offset = first; offset < first + count && offset < TILE_VOL; ++offset)
        if (!is_hole(offset, axes)) return false;
    return true;
}

/// Key chunks of a tile with padded axes `axes` that hold a real key: trailing all-hole chunks are
/// skipped (with holes along the outermost padded axis they form a suffix of the tile).
__host__ __device__ constexpr int live_chunks_ct(int axes) {
    int live = CHUNKS_PER_TILE;
    while (live > 1 && all_holes((live - 1) * BLOCK_N, BLOCK_N, axes)) --live;
    return live;
}

/// Bit b set: query block b of a tile with padded axes `axes` holds only holes (blocks 0...63).
__host__ __device__ constexpr u64 dead_query_blocks_ct(int axes) {
    u64 bits = 0;
    for (int b = 0; b < QBLOCKS_PER_TILE && b < 64; ++b)
        if (all_holes(b * BLOCK_M, BLOCK_M, axes)) bits |= 1ull << b;
    return bits;
}

/// The tables above, evaluated at compile time.
template <int Axes>
struct HoleTable {
    static constexpr int live_chunks = live_chunks_ct(Axes);
    static constexpr u64 dead_query_blocks = dead_query_blocks_ct(Axes);
};

__device__ __forceinline__ int live_chunks(int axes) {
    if constexpr (!HAS_HOLES) {
        return CHUNKS_PER_TILE;
    } else {
        switch (axes) {
            case 0: return CHUNKS_PER_TILE;
            case 1: return HoleTable<1>::live_chunks;
            case 2: return HoleTable<2>::live_chunks;
            case 3: return HoleTable<3>::live_chunks;
            case 4: return HoleTable<4>::live_chunks;
            case 5: return HoleTable<5>::live_chunks;
            case 6: return HoleTable<6>::live_chunks;
            default: return HoleTable<7>::live_chunks;
        }
    }
}

__device__ __forceinline__ bool query_block_dead(int sub, int axes) {
    if constexpr (!HAS_HOLES) {
        return false;
    } else {
        u64 bits = 0;
        switch (axes) {
            case 0: bits = 0; break;
            case 1: bits = HoleTable<1>::dead_query_blocks; break;
            case 2: bits = HoleTable<2>::dead_query_blocks; break;
            case 3: bits = HoleTable<3>::dead_query_blocks; break;
            case 4: bits = HoleTable<4>::dead_query_blocks; break;
            case 5: bits = HoleTable<5>::dead_query_blocks; break;
            case 6: bits = HoleTable<6>::dead_query_blocks; break;
            default: bits = HoleTable<7>::dead_query_blocks; break;
        }
        return sub < 64 && ((bits >> sub) & 1);
    }
}

// ---- Query packing ----------------------------------------------------------------------------------

constexpr bool PACK_QUERIES = STA_PACK_QUERIES && (PAD_T || PAD_H);

/// Whether the query rows of a tile with padded axes `axes` are packed (holes are whole lines).
__device__ __forceinline__ bool packed_tile(int axes) { return PACK_QUERIES && axes != 0 && (axes & 4) == 0; }

/// Real rows of a packed tile.
__device__ __forceinline__ int packed_rows(int axes) {
    return ((axes & 1) ? REAL_T : TILE_T) * ((axes & 2) ? REAL_H : TILE_H) * TILE_W;
}

/// Tile offset of the `rank`-th real row of a packed tile (real rows in tile order).
__device__ __forceinline__ int packed_offset(int rank, int axes) {
    const int real_h = (axes & 2) ? REAL_H : TILE_H;
    const int line = rank / TILE_W;
    const int w = rank - line * TILE_W;
    const int t = line / real_h;
    const int h = line - t * real_h;
    return (t * TILE_H + h) * TILE_W + w;
}

// ---- Work decomposition -----------------------------------------------------------------------------

/// The query block a CTA computes and the key tiles it visits.
struct Work {
    int bh;            // batch · heads + head
    int row0;          // first query row (sequence index)
    int rows;          // query rows of this block that belong to it (≤ 128; the rest belong elsewhere)
    bool text_query;   // a block of text queries
    bool any;          // false when no row of the block attends anything (holes, padding text)
    int tile_count;    // key tiles visited before the text
    const int* tiles;  // key tiles of a video query block (nullptr for text queries: every tile)
    int axes;          // padded axes of the query tile (0 for text)
    bool packed;       // rows are the real rows pack_base ..< pack_base + rows of tile row0 / TILE_VOL
    int pack_base;
    bool writes_holes; // this unit also writes O = 0 / LSE = −∞ to the hole rows of its packed tile
    int text_valid;    // valid text positions of the block's batch row (0 ... TEXT_COUNT)
};

/// The valid text length of batch row `row`: text_valid[row], or `default_valid` when text_valid is null,
/// clamped into 0 ... TEXT_COUNT.
__device__ __forceinline__ int row_text_valid(const int* __restrict__ text_valid, int default_valid, int row) {
    if constexpr (TEXT_COUNT == 0) {
        return 0;
    } else {
        const int value = text_valid != nullptr ? __ldg(text_valid + row) : default_valid;
        return min(max(value, 0), TEXT_COUNT);
    }
}

__device__ __forceinline__ Work decode_work(int unit, int heads, int batch, const int* __restrict__ window_of_head,
                                            const int* __restrict__ key_tile_start,
                                            const int* __restrict__ key_tiles, const int* __restrict__ text_valid,
                                            int default_text_valid) {
    Work w;
    w.axes = 0;
    w.packed = false;
    w.pack_base = 0;
    w.writes_holes = false;
    const int text_units = batch * heads * TEXT_QBLOCKS;
    if (TEXT_QBLOCKS > 0 && unit < text_units) {
        constexpr int text_qblocks = TEXT_QBLOCKS > 0 ? TEXT_QBLOCKS : 1;  // no division by zero
        w.bh = unit / text_qblocks;
        const int block = unit - w.bh * text_qblocks;
        w.row0 = VIDEO_TOKENS + block * BLOCK_M;
        w.rows = min(BLOCK_M, TEXT_COUNT - block * BLOCK_M);
        w.text_query = true;
        w.tiles = nullptr;
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        w.any = block * BLOCK_M < w.text_valid;
        w.tile_count = NUM_TILES;
    } else {
        unit -= text_units;
        constexpr int per_head = NUM_TILES * QBLOCKS_PER_TILE;
        w.bh = unit / per_head;
        const int rest = unit - w.bh * per_head;
        const int tile = rest / QBLOCKS_PER_TILE;
        const int sub = rest - tile * QBLOCKS_PER_TILE;
        w.row0 = tile * TILE_VOL + sub * BLOCK_M;
        w.rows = min(BLOCK_M, TILE_VOL - sub * BLOCK_M);
        w.text_query = false;
        w.any = !query_block_dead(sub, boundary_axes(tile));
        if constexpr (PACK_QUERIES) {
            const int axes = boundary_axes(tile);
            if (packed_tile(axes)) {
                const int real = packed_rows(axes);
                w.axes = axes;
                w.row0 = tile * TILE_VOL;
                w.pack_base = sub * BLOCK_M;
                w.packed = w.pack_base < real;
                w.rows = w.packed ? min(BLOCK_M, real - w.pack_base) : 0;
                w.any = w.packed;
                w.writes_holes = sub == QBLOCKS_PER_TILE - 1;
            }
        }
        const int head = w.bh % heads;
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        const int row = __ldg(window_of_head + head) * NUM_TILES + tile;
        const int start = __ldg(key_tile_start + row);
        w.tile_count = __ldg(key_tile_start + row + 1) - start;
        w.tiles = key_tiles + start;
    }
    return w;
}

/// One chunk of at most BLOCK_N keys: never straddles a tile or the text.
struct Chunk {
    int key_row;  // first key (sequence index)
    int valid;    // keys of the chunk inside its tile or inside the valid text (the rest are masked)
    int tile;     // the key tile, or −1 for text
    int offset;   // offset of the chunk's first key inside its tile
    int part;     // chunk index inside its tile (or the text): offset / BLOCK_N
};

/// Walks the chunks of a query block in order: the live chunks of each key tile, then the text chunks.
/// Producer and consumers each walk their own cursor over the same sequence.
struct ChunkCursor {
    int listed;  // index into the key tile list; tile_count for the text
    int part;    // chunk inside the current tile (or the text)
    int parts;   // chunks of the current tile (or the text)
    int tile;    // current tile, or −1 for the text

    __device__ __forceinline__ void enter(const Work& w) {
        if (listed < w.tile_count) {
            tile = w.text_query ? listed : __ldg(w.tiles + listed);
            parts = HAS_HOLES ? live_chunks(boundary_axes(tile)) : CHUNKS_PER_TILE;
        } else {
            tile = -1;
            parts = (w.text_valid + BLOCK_N - 1) / BLOCK_N;
        }
    }
    __device__ __forceinline__ void start(const Work& w) {
        listed = 0;
        part = 0;
        enter(w);
        if (parts == 0) listed = w.tile_count + 1;  // no key at all (no tiles, no text)
    }
    /// Whether the cursor is on a chunk.
    __device__ __forceinline__ bool valid(const Work& w) const { return listed <= w.tile_count && part < parts; }
    __device__ __forceinline__ void advance(const Work& w) {
        if (++part == parts && listed < w.tile_count) {
            ++listed;
            part = 0;
            enter(w);
        }
    }
    __device__ __forceinline__ Chunk chunk(const Work& w) const {
        Chunk c;
        c.tile = tile;
        c.part = part;
        c.offset = part * BLOCK_N;
        if (tile >= 0) {
            c.key_row = tile * TILE_VOL + c.offset;
            c.valid = min(BLOCK_N, TILE_VOL - c.offset);
        } else {
            c.key_row = VIDEO_TOKENS + c.offset;
            c.valid = min(BLOCK_N, w.text_valid - c.offset);
        }
        return c;
    }
};

// ---- Consumer pieces --------------------------------------------------------------------------------

/// S = Q·Kᵀ for this warpgroup's 64 rows and one chunk (HEAD_DIM / 16 wgmmas, one group).
__device__ __forceinline__ void issue_qk(float (&s)[BLOCK_N / 2], u32 q_rows, u32 k_stage) {
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < HEAD_DIM / 16; ++k) {
        const u64 da = smem_descriptor(q_rows + (k / 4) * Q_PANEL_BYTES + (k % 4) * 32, 16, 1024);
        const u64 db = smem_descriptor(k_stage + (k / 4) * KV_PANEL_BYTES + (k % 4) * 32, 16, 1024);
#if STA_BLOCK_N == 192
        if (k == 0) {
            wgmma_ss_m64n192k16<0>(s, da, db);
        } else {
            wgmma_ss_m64n192k16<1>(s, da, db);
        }
#else
        if (k == 0) {
            wgmma_ss_m64n128k16<0>(s, da, db);
        } else {
            wgmma_ss_m64n128k16<1>(s, da, db);
        }
#endif
    }
    wgmma_commit();
}

/// O += P·V for one chunk (BLOCK_N / 16 wgmmas over 16 keys each, one group). V is N-major (D contiguous).
__device__ __forceinline__ void issue_pv(float (&o)[HEAD_DIM / 2], const u32 (&p)[BLOCK_N / 4], u32 v_stage) {
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < BLOCK_N / 16; ++k) {
        const u64 db = smem_descriptor(v_stage + k * 2048, KV_PANEL_BYTES, 1024);
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
constexpr bool USE_MASK_TABLE = STA_MASK_TABLE && (VIDEO_MASKS || TEXT_MASKS) && MASK_WORDS <= 2048;

struct MaskTable {
    u64 words[USE_MASK_TABLE ? MASK_WORDS : 1];
};

/// The mask word, for quad `quad`, of a chunk whose first `valid` columns are keys: chunk `part` of a tile
/// with padded axes `axes` (holes masked too), or a text chunk (`axes` 0).
__host__ __device__ constexpr u64 mask_word_ct(int axes, int part, int valid, int quad) {
    u64 word = 0;
    for (int j = 0; j < BLOCK_N / 8; ++j)
        for (int e = 0; e < 2; ++e) {
            const int column = 8 * j + 2 * quad + e;
            if (column >= valid || (axes != 0 && is_hole(part * BLOCK_N + column, axes)))
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

/// Sets masked scores of a chunk to −∞: columns at or past `valid`, and holes.
/// Column of s[4j + e] and s[4j + 2 + e] (e = 0, 1): 8j + 2·quad + e.
__device__ __forceinline__ void mask_chunk(float (&s)[BLOCK_N / 2], const Chunk& c, int quad) {
    if constexpr (!VIDEO_MASKS) {
        if (c.tile >= 0) return;  // whole tiles of real keys: only text chunks can need a mask
    }
    if constexpr (USE_MASK_TABLE) {
        // Text rows are indexed by the chunk's length (no text: the part, a row never read).
        const int text_row = TEXT_MASKS ? BLOCK_N - c.valid : c.part;
        const int row = c.tile >= 0 ? (HAS_HOLES ? boundary_axes(c.tile) : 0) * CHUNKS_PER_TILE + c.part
                                    : 8 * CHUNKS_PER_TILE + text_row;
        const u64 word = mask_table.words[row * 4 + quad];
        if (!__any_sync(0xffffffffu, word != 0)) return;
#pragma unroll
        for (int j = 0; j < BLOCK_N / 8; ++j) {
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
    int axes = 0;
    if constexpr (HAS_HOLES) {
        if (c.tile >= 0) axes = boundary_axes(c.tile);
    }
    bool need = axes != 0;
    if constexpr (VIDEO_MASKS || TEXT_MASKS) need |= c.valid < BLOCK_N;
    if (!need) return;
#pragma unroll
    for (int j = 0; j < BLOCK_N / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int column = 8 * j + 2 * quad + e;
            bool masked = column >= c.valid;
            if constexpr (HAS_HOLES) masked |= axes != 0 && is_hole(c.offset + column, axes);
            if (masked) {
                s[4 * j + e] = neg_inf();
                s[4 * j + 2 + e] = neg_inf();
            }
        }
    }
}

/// Online softmax of one chunk for the thread's two rows. Turns s into unnormalised probabilities,
/// updates the running max (log2 domain, scaled) and the thread's partial row sums, and returns the
/// factors by which the accumulated output must be rescaled.
__device__ __forceinline__ void softmax_chunk(float (&s)[BLOCK_N / 2], float scale_log2, float& m0, float& m1, float& l0,
                                              float& l1, float& corr0, float& corr1) {
    float x0 = neg_inf(), x1 = neg_inf();
#pragma unroll
    for (int j = 0; j < BLOCK_N / 8; ++j) {
        x0 = fmaxf(x0, fmaxf(s[4 * j], s[4 * j + 1]));
        x1 = fmaxf(x1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    const float n0 = fmaxf(m0, x0 * scale_log2);
    const float n1 = fmaxf(m1, x1 * scale_log2);
    // A row with no unmasked key so far keeps −∞; subtract 0 then so that exp2 gives 0, not NaN.
    const float b0 = n0 == neg_inf() ? 0.f : n0;
    const float b1 = n1 == neg_inf() ? 0.f : n1;
    corr0 = fast_exp2(m0 - b0);
    corr1 = fast_exp2(m1 - b1);
    m0 = n0;
    m1 = n1;
    float r0 = 0.f, r1 = 0.f;
#pragma unroll
    for (int j = 0; j < BLOCK_N / 8; ++j) {
        s[4 * j] = fast_exp2(fmaf(s[4 * j], scale_log2, -b0));
        s[4 * j + 1] = fast_exp2(fmaf(s[4 * j + 1], scale_log2, -b0));
        s[4 * j + 2] = fast_exp2(fmaf(s[4 * j + 2], scale_log2, -b1));
        s[4 * j + 3] = fast_exp2(fmaf(s[4 * j + 3], scale_log2, -b1));
        r0 += s[4 * j] + s[4 * j + 1];
        r1 += s[4 * j + 2] + s[4 * j + 3];
    }
    l0 = fmaf(l0, corr0, r0);
    l1 = fmaf(l1, corr1, r1);
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

/// The wgmma A fragments of P (k-step k uses p[4k ..< 4k + 4]).
__device__ __forceinline__ void pack_p(u32 (&p)[BLOCK_N / 4], const float (&s)[BLOCK_N / 2]) {
#pragma unroll
    for (int i = 0; i < BLOCK_N / 4; ++i) p[i] = pack2(s[2 * i], s[2 * i + 1]);
}

/// Whether query `row` (sequence index; `text_query` says which part) attends anything, with `text_valid`
/// valid text positions in its batch row.
__device__ __forceinline__ bool query_row_valid(int row, bool text_query, int text_valid) {
    if (text_query) return row - VIDEO_TOKENS < text_valid;
    if constexpr (HAS_HOLES) {
        const int tile = row / TILE_VOL;
        const int axes = boundary_axes(tile);
        return axes == 0 || !is_hole(row - tile * TILE_VOL, axes);
    }
    return true;
}

}  // namespace sta

// ---- The kernel -------------------------------------------------------------------------------------

using namespace sta;

extern "C" __global__ void __launch_bounds__(THREADS, 1)
    sta_forward_sm90(const __grid_constant__ StaTensorMap q_map, const __grid_constant__ StaTensorMap k_map,
                     const __grid_constant__ StaTensorMap v_map, u16* __restrict__ o, float* __restrict__ lse,
                     const int* __restrict__ window_of_head, const int* __restrict__ key_tile_start,
                     const int* __restrict__ key_tiles, int heads, int batch, float scale,
                     const u16* __restrict__ q, const int* __restrict__ text_valid, int default_text_valid) {
    // Barriers: [0] Q full; [1 + s] K full; [1 + S + s] V full; [1 + 2S + s] K empty; [1 + 3S + s] V empty.
    __shared__ __align__(8) u64 barriers[1 + 4 * STAGES];
    extern __shared__ unsigned char dynamic_smem[];
    const u32 base = (smem_address(dynamic_smem) + 1023u) & ~1023u;
    const u32 q_smem = base;
    const u32 k_smem = q_smem + Q_BYTES;
    const u32 v_smem = k_smem + STAGES * KV_BYTES;
    const u32 bar0 = smem_address(barriers);
    const u32 q_full = bar0;
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
            auto load_chunk = [&](u32 dst, const StaTensorMap* map, u32 bar, int key_row, int bh) {
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
                const u32 phase = (i / STAGES) & 1;
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
    const u32 q_rows = q_smem + cw * 64 * 128;  // this warpgroup's 64 rows inside each Q panel
    const float scale_log2 = scale * LOG2E;

    float acc[HEAD_DIM / 2];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 2; ++i) acc[i] = 0.f;
    float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.f, l1 = 0.f;

    auto release = [&](u32 bar) {
        __syncwarp();
        if (lane == 0) mbar_arrive(bar);
    };

    ChunkCursor cursor;
    cursor.start(work);
    if (work.any && cursor.valid(work)) {
        float s[BLOCK_N / 2];
        u32 p[BLOCK_N / 4];
        float corr0, corr1;
#if STA_PINGPONG
        // The two consumer warpgroups take turns issuing their wgmmas (named barriers 3 and 4), so that
        // one's softmax runs while the other's products occupy the tensor cores. Warpgroup 0 goes first.
        const u32 my_turn = 3 + cw, other_turn = 4 - cw;
        if (cw == 1) named_barrier_arrive(3, 256);
        auto turn_begin = [&]() { named_barrier_sync(my_turn, 256); };
        auto turn_end = [&](bool last) {
            if (!(last && cw == 1)) named_barrier_arrive(other_turn, 256);
        };
#else
        auto turn_begin = [&]() {};
        auto turn_end = [&](bool) {};
#endif
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
                const u32 to = q_rows + (piece / 8) * Q_PANEL_BYTES + r * 128 + (((piece % 8) ^ (r % 8)) * 16);
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
#if STA_SKIP_RESCALE
            // Once the running maxima settle, most chunks leave them unchanged: skip the multiplications
            // by 1 (a warp's rows decide together).
            if (__any_sync(0xffffffffu, corr0 != 1.f || corr1 != 1.f)) rescale(acc, corr0, corr1);
#else
            rescale(acc, corr0, corr1);
#endif
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
        if (local0 < work.rows) lse[slice + row_of(local0)] = valid0 ? (m0 + fast_log2(l0)) * LN2 : neg_inf();
        if (local1 < work.rows) lse[slice + row_of(local1)] = valid1 ? (m1 + fast_log2(l1)) * LN2 : neg_inf();
    }
    // Q smem of these rows is free: every wgmma that read it has completed. Same 128-byte swizzle.
    const int r0 = warp * 16 + group;  // row inside this warpgroup's 64
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; ++j) {
        const u32 chunk_base = q_rows + (j / 8) * Q_PANEL_BYTES + ((j % 8) ^ group) * 16 + quad * 4;
        const u32 w0 = pack2(valid0 ? acc[4 * j] * inv0 : 0.f, valid0 ? acc[4 * j + 1] * inv0 : 0.f);
        const u32 w1 = pack2(valid1 ? acc[4 * j + 2] * inv1 : 0.f, valid1 ? acc[4 * j + 3] * inv1 : 0.f);
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
            const u32 from = q_rows + (piece / 8) * Q_PANEL_BYTES + r * 128 + (((piece % 8) ^ (r % 8)) * 16);
            u32 x, y, z, w;
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                         : "=r"(x), "=r"(y), "=r"(z), "=r"(w)
                         : "r"(from)
                         : "memory");
            u16* to = o + (slice + row_of(local)) * HEAD_DIM + piece * 8;
            asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(to), "r"(x), "r"(y), "r"(z), "r"(w)
                         : "memory");
        }
    }

    // ---- Hole rows of a packed tile: O = 0, LSE = −∞ (the tile's last unit; both consumer warpgroups) ----
    if (PACK_QUERIES && work.writes_holes) {
        const int consumer = (cw * 128 + tid);  // 0 ..< 256
        const int tile_row0 = work.row0;        // packed units keep row0 at the tile's first row
        for (int offset = consumer; offset < TILE_VOL; offset += 256) {
            if (!is_hole(offset, work.axes)) continue;
            const long long row = slice + tile_row0 + offset;
            lse[row] = neg_inf();
            uint4* to = reinterpret_cast<uint4*>(o + row * HEAD_DIM);
#pragma unroll
            for (int piece = 0; piece < HEAD_DIM / 8; ++piece) to[piece] = make_uint4(0u, 0u, 0u, 0u);
        }
    }
}
