// Sliding Tile Attention, the part the portable (sm_80 and newer) kernels share: storage types, the
// compile-time problem constants and their checks, PTX wrappers (cp.async, ldmatrix, mma.sync m16n8k16,
// conversions) and the hole geometry. The launchers prepend it to sta_forward_sm80.cu and
// sta_backward_sm80.cu (NVRTC ships no CUDA headers, and the kernel cache compiles one source).

typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;

#if !defined(STA_HEAD_DIM) || !defined(STA_CANVAS_T) || !defined(STA_CANVAS_H) || !defined(STA_CANVAS_W) \
    || !defined(STA_TILE_T) || !defined(STA_TILE_H) || !defined(STA_TILE_W) || !defined(STA_GRID_T)      \
    || !defined(STA_GRID_H) || !defined(STA_GRID_W) || !defined(STA_TEXT_COUNT)
#error "define STA_HEAD_DIM, STA_CANVAS_T/H/W, STA_TILE_T/H/W, STA_GRID_T/H/W and STA_TEXT_COUNT"
#endif
#if defined(STA_BF16) == defined(STA_FP16)
#error "define exactly one of STA_BF16=1 and STA_FP16=1"
#endif

namespace sta {

// ---------------------------------------------------------------------------------------------------------
// Problem constants
// ---------------------------------------------------------------------------------------------------------

constexpr int HEAD_DIM = STA_HEAD_DIM;
constexpr int CANVAS_T = STA_CANVAS_T, CANVAS_H = STA_CANVAS_H, CANVAS_W = STA_CANVAS_W;
constexpr int TILE_T = STA_TILE_T, TILE_H = STA_TILE_H, TILE_W = STA_TILE_W;
constexpr int GRID_T = STA_GRID_T, GRID_H = STA_GRID_H, GRID_W = STA_GRID_W;
constexpr int TEXT_COUNT = STA_TEXT_COUNT;   // text positions; how many are valid is a run-time value per row

constexpr int TILE_VOL = TILE_T * TILE_H * TILE_W;    // tokens per tile, holes included
constexpr int NUM_TILES = GRID_T * GRID_H * GRID_W;   // tiles on the canvas
constexpr int V = NUM_TILES * TILE_VOL;               // video positions in the sequence = first text index
constexpr int S = V + TEXT_COUNT;                     // sequence length

// An axis is padded when its tiles overhang the canvas; only then can a tile hold holes.
constexpr bool PAD_T = GRID_T * TILE_T != CANVAS_T;
constexpr bool PAD_H = GRID_H * TILE_H != CANVAS_H;
constexpr bool PAD_W = GRID_W * TILE_W != CANVAS_W;
constexpr bool HAS_HOLES = PAD_T || PAD_H || PAD_W;

static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "STA_HEAD_DIM must be 64 or 128");
static_assert(GRID_T == (CANVAS_T + TILE_T - 1) / TILE_T && GRID_H == (CANVAS_H + TILE_H - 1) / TILE_H
                  && GRID_W == (CANVAS_W + TILE_W - 1) / TILE_W,
              "STA_GRID_x must be ceil(STA_CANVAS_x / STA_TILE_x)");
static_assert(TEXT_COUNT >= 0, "STA_TEXT_COUNT must not be negative");
static_assert(NUM_TILES >= 1 && TILE_VOL >= 1, "empty canvas");


// ---------------------------------------------------------------------------------------------------------
// PTX wrappers
// ---------------------------------------------------------------------------------------------------------

// -inf (NVRTC has no <math.h>, hence no INFINITY).
__device__ __forceinline__ float neg_inf() { return __uint_as_float(0xff800000u); }

namespace ptx {

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// 16-byte global → shared copy that bypasses L1. With valid == false the source size is 0: nothing is read
// (the source address is still a valid one, the tensor base) and the 16 destination bytes are zero-filled.
__device__ __forceinline__ void cp_async_16(uint32_t destination, const void* source, bool valid) {
    const int source_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source),
                 "r"(source_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
}

// ldmatrix .x4: lanes 8i..8i+7 give the row addresses (16 bytes each) of 8×8 matrix i; register i receives
// matrix i, lane l holding row l/4, columns 2(l%4) and 2(l%4)+1 (non-transposed), or row-of-the-stored-
// matrix 2(l%4) and 2(l%4)+1 at column l/4 (.trans).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

// D = A·B + D for a 16×8×16 block: A 16×16 row-major (4 registers), B 16×8 column-major (2), D 16×8 fp32 (4).
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(STA_BF16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two floats → two 16-bit values in one register, `low` in bits 0-15, round to nearest even.
// (cvt.rn.{bf16x2,f16x2}.f32 d, a, b puts a in the upper half and b in the lower half.)
__device__ __forceinline__ uint32_t pack2(float low, float high) {
    uint32_t result;
#if defined(STA_BF16)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(result) : "f"(high), "f"(low));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(result) : "f"(high), "f"(low));
#endif
    return result;
}

__device__ __forceinline__ float exp2_approx(float x) {   // 2^x; ex2(-inf) = +0
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float log2_approx(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

}  // namespace ptx

// ---------------------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------------------

// Whether some position of tile `tile` can be a hole: the tile is the last one along a padded axis.
__device__ __forceinline__ bool tile_may_hold_holes(int tile) {
    if constexpr (!HAS_HOLES) {
        return false;
    } else {
        const int tt = tile / (GRID_H * GRID_W), th = (tile / GRID_W) % GRID_H, tw = tile % GRID_W;
        return (PAD_T && tt == GRID_T - 1) || (PAD_H && th == GRID_H - 1) || (PAD_W && tw == GRID_W - 1);
    }
}

// Whether offset `offset` (0 ..< TILE_VOL, row-major in the tile) of tile `tile` is a hole: its canvas
// coordinate (tile coordinate · tile extent + offset in tile) is past the canvas on some axis.
__device__ __forceinline__ bool is_hole(int tile, int offset) {
    if constexpr (!HAS_HOLES) {
        return false;
    } else {
        const int tt = tile / (GRID_H * GRID_W), th = (tile / GRID_W) % GRID_H, tw = tile % GRID_W;
        const int ot = offset / (TILE_H * TILE_W), oh = (offset / TILE_W) % TILE_H, ow = offset % TILE_W;
        return (PAD_T && tt * TILE_T + ot >= CANVAS_T) || (PAD_H && th * TILE_H + oh >= CANVAS_H)
               || (PAD_W && tw * TILE_W + ow >= CANVAS_W);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------------------

// The valid text length of batch row `batch`: text_valid[batch] when the caller passed per-row lengths,
// else `default_valid` (the plan's), clamped into 0 ... TEXT_COUNT. Text positions at or past it are
// padding: such queries attend nothing and such keys are never attended.
__device__ __forceinline__ int row_text_valid(const int* text_valid, int default_valid, int batch) {
    if constexpr (TEXT_COUNT == 0) {
        return 0;
    } else {
        const int value = text_valid != nullptr ? __ldg(text_valid + batch) : default_valid;
        return min(max(value, 0), TEXT_COUNT);
    }
}

}  // namespace sta
