// Sliding Tile Attention: what every kernel shares. Storage types, the compile-time problem constants and
// their checks, the text and hole geometry, and the PTX wrappers every architecture has (conversions,
// exp2/log2). Included first by every kernel; NVRTC ships no CUDA headers, so the types are declared here.
//
// Problem constants (NVRTC -D, chosen by the Swift launchers from the plan): STA_HEAD_DIM (64 | 128),
// STA_BF16=1 or STA_FP16=1, STA_CANVAS_T/H/W, STA_TILE_T/H/W, STA_GRID_T/H/W (rank < 3 pads the leading axes
// with 1), STA_TEXT_COUNT. How many text positions are valid is a run-time value per batch row.

#pragma once

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

constexpr int TILE_VOL = TILE_T * TILE_H * TILE_W;      // tokens per tile, holes included
constexpr int NUM_TILES = GRID_T * GRID_H * GRID_W;     // tiles on the canvas
constexpr int VIDEO_TOKENS = NUM_TILES * TILE_VOL;      // video positions in the sequence = first text index
constexpr int SEQ = VIDEO_TOKENS + TEXT_COUNT;          // sequence length

// An axis is padded when its tiles overhang the canvas; only then can a tile hold holes.
constexpr bool PAD_T = GRID_T * TILE_T != CANVAS_T;
constexpr bool PAD_H = GRID_H * TILE_H != CANVAS_H;
constexpr bool PAD_W = GRID_W * TILE_W != CANVAS_W;
constexpr bool HAS_HOLES = PAD_T || PAD_H || PAD_W;
// Tokens of the last tile along an axis that are real: offsets at or past this are holes there.
constexpr int REAL_T = CANVAS_T - (GRID_T - 1) * TILE_T;
constexpr int REAL_H = CANVAS_H - (GRID_H - 1) * TILE_H;
constexpr int REAL_W = CANVAS_W - (GRID_W - 1) * TILE_W;

static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "STA_HEAD_DIM must be 64 or 128");
static_assert(GRID_T == (CANVAS_T + TILE_T - 1) / TILE_T && GRID_H == (CANVAS_H + TILE_H - 1) / TILE_H
                  && GRID_W == (CANVAS_W + TILE_W - 1) / TILE_W,
              "STA_GRID_x must be ceil(STA_CANVAS_x / STA_TILE_x)");
static_assert(TEXT_COUNT >= 0, "STA_TEXT_COUNT must not be negative");
static_assert(NUM_TILES >= 1 && TILE_VOL >= 1, "empty canvas");

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

// ±inf (NVRTC has no <math.h>, hence no INFINITY).
__device__ __forceinline__ float neg_inf() { return __uint_as_float(0xff800000u); }
__device__ __forceinline__ float pos_inf() { return __uint_as_float(0x7f800000u); }

// ---------------------------------------------------------------------------------------------------------
// PTX wrappers every architecture has
// ---------------------------------------------------------------------------------------------------------

namespace ptx {

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
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

// The base a lazy online softmax moves a row's base to when the row's sum of exp2(score − base) over a
// chunk is `row_sum` (> 1): base + log2(row_sum), which brings the chunk's probabilities to at most 1. Past
// a sum of 2^125 the factor exp2(base − new base) the chunk is rescaled by would come near fp32's smallest
// normal, which ex2.approx.ftz flushes to 0, dropping the row's largest scores; such a row (a score about
// 125 or more above its base) gets a NaN base instead, so that its sum, output and LSE go NaN and the
// exact-rows pass redoes it, as for an exponential that overflows.
__device__ __forceinline__ float moved_base(float base, float row_sum) {
    return row_sum < 0x1p125f ? base + ptx::log2_approx(row_sum) : __int_as_float(0x7fc00000);
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

// ---------------------------------------------------------------------------------------------------------
// Holes
// ---------------------------------------------------------------------------------------------------------
//
// A hole is a position of a tile that lies past the canvas on some axis (only the last tile along a padded
// axis has holes). Two views of the same fact:
//   is_hole(tile, offset): from a tile index and an offset inside it (row-major in the tile);
//   boundary_axes(tile) and hole_under(offset, axes): the padded axes a tile is the last tile of (a bit
//     set; 0 for tiles without holes), then whether an offset is a hole in such a tile — the form compile-
//     time tables are built from. is_hole(tile, offset) == hole_under(offset, boundary_axes(tile)).

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

// Which padded axes `tile` is the last tile of (bit 0: t, 1: h, 2: w).
__host__ __device__ constexpr int boundary_axes(int tile) {
    return ((PAD_T && tile / (GRID_H * GRID_W) == GRID_T - 1) ? 1 : 0) |
           ((PAD_H && (tile / GRID_W) % GRID_H == GRID_H - 1) ? 2 : 0) | ((PAD_W && tile % GRID_W == GRID_W - 1) ? 4 : 0);
}

// ---------------------------------------------------------------------------------------------------------
// Visit order
// ---------------------------------------------------------------------------------------------------------
//
// The Hopper kernels take a head's blocks tile by tile in an order the Swift launcher picks per head from
// its window (`AttentionPlan.visitOrderByHead`): the order in which the tiles a window reaches lie closest
// together, so that the CTAs running at once read fewer distinct tiles of K and V (or Q and dO) and more
// of them stay in L2. An order packs three axes (0: t, 1: h, 2: w), outermost first: outer | middle << 2 |
// inner << 4 (row-major: 36). visited_tile(n, order) is the n-th tile of that order.

__host__ __device__ constexpr int grid_extent(int axis) { return axis == 0 ? GRID_T : axis == 1 ? GRID_H : GRID_W; }

__device__ __forceinline__ int visited_tile(int n, int order) {
    const int outer = order & 3, middle = (order >> 2) & 3, inner = (order >> 4) & 3;
    const int inner_extent = grid_extent(inner), middle_extent = grid_extent(middle);
    const int ci = n % inner_extent, cm = (n / inner_extent) % middle_extent, co = n / (inner_extent * middle_extent);
    const int tt = outer == 0 ? co : middle == 0 ? cm : ci;
    const int th = outer == 1 ? co : middle == 1 ? cm : ci;
    const int tw = outer == 2 ? co : middle == 2 ? cm : ci;
    return (tt * GRID_H + th) * GRID_W + tw;
}

// Whether offset `offset` inside a tile whose padded axes are `axes` is a hole.
__host__ __device__ constexpr bool hole_under(int offset, int axes) {
    return (PAD_T && (axes & 1) && offset / (TILE_H * TILE_W) >= REAL_T) ||
           (PAD_H && (axes & 2) && (offset / TILE_W) % TILE_H >= REAL_H) ||
           (PAD_W && (axes & 4) && offset % TILE_W >= REAL_W);
}

// Whether the tile offsets [first, first + count) are all holes under `axes` (compile-time hole tables).
__host__ __device__ constexpr bool all_holes(int first, int count, int axes) {
    for (int offset = first; offset < first + count && offset < TILE_VOL; ++offset)
        if (!hole_under(offset, axes)) return false;
    return true;
}

/// Parts of `Part` tokens of a tile with padded axes `axes` that hold a real token: trailing parts made
/// only of holes do not count (with holes along the outermost padded axis they form a suffix of the tile).
__host__ __device__ constexpr int live_parts_ct(int part, int axes) {
    int live = (TILE_VOL + part - 1) / part;
    while (live > 1 && all_holes((live - 1) * part, part, axes)) --live;
    return live;
}

template <int Part, int Axes>
struct LiveParts {
    static constexpr int value = live_parts_ct(Part, Axes);
};

/// live_parts_ct(Part, axes) for a run-time `axes`, from tables evaluated at compile time.
template <int Part>
__device__ __forceinline__ int live_parts(int axes) {
    if constexpr (!HAS_HOLES) {
        return (TILE_VOL + Part - 1) / Part;
    } else {
        switch (axes) {
            case 0: return (TILE_VOL + Part - 1) / Part;
            case 1: return LiveParts<Part, 1>::value;
            case 2: return LiveParts<Part, 2>::value;
            case 3: return LiveParts<Part, 3>::value;
            case 4: return LiveParts<Part, 4>::value;
            case 5: return LiveParts<Part, 5>::value;
            case 6: return LiveParts<Part, 6>::value;
            default: return LiveParts<Part, 7>::value;
        }
    }
}

}  // namespace sta
