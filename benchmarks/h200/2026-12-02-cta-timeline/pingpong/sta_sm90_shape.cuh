// Sliding Tile Attention, Hopper forward kernel: its shape. Block sizes, ring depth, threads and the
// shared-memory budget come from the Swift launcher (STAForwardHopperKernel.Shape) as -D definitions; what
// follows from them, the named barriers and the register budgets are named here. After sta_common.cuh.
//
// Shape constants (NVRTC -D, no defaults): STA_THREADS (one producer and two consumer warpgroups: 384),
// STA_BLOCK_M (query rows per CTA: 64 per consumer warpgroup), STA_BLOCK_N (keys per chunk, one wgmma N:
// 128 or 192), STA_STAGES (K/V ring depth), STA_SHARED_BYTES (the dynamic shared memory the launch
// provides: 1024 alignment bytes, the query block and the ring), STA_KEY_SLICES (t-slices per packed key
// chunk of tiles padded along H, 0 for none).

#pragma once

#include "sta_common.cuh"

#if !defined(STA_THREADS) || !defined(STA_BLOCK_M) || !defined(STA_BLOCK_N) || !defined(STA_STAGES) \
    || !defined(STA_SHARED_BYTES) || !defined(STA_KEY_SLICES)
#error "define STA_THREADS, STA_BLOCK_M, STA_BLOCK_N, STA_STAGES, STA_SHARED_BYTES and STA_KEY_SLICES (the Swift launcher chooses them)"
#endif

namespace sta {

// ---- Blocking ---------------------------------------------------------------------------------------

constexpr int BLOCK_M = STA_BLOCK_M;                 // query rows per CTA: two consumer warpgroups of 64
constexpr int BLOCK_N = STA_BLOCK_N;                 // keys per chunk
constexpr int STAGES = STA_STAGES;
constexpr int BOX_ROWS = 64;                         // rows of one TMA box (64 columns × 64 rows)
constexpr int PANELS = HEAD_DIM / 64;                // 64-column panels (one 128-byte swizzle span each)
constexpr int Q_PANEL_BYTES = BLOCK_M * 128;         // BLOCK_M rows of 128 bytes
constexpr int KV_PANEL_BYTES = BLOCK_N * 128;        // BLOCK_N rows of 128 bytes
constexpr int Q_BYTES = PANELS * Q_PANEL_BYTES;      // the query block
constexpr int KV_BYTES = PANELS * KV_PANEL_BYTES;    // one chunk of K or V
constexpr int SMEM_BYTES = 1024 + Q_BYTES + 2 * STAGES * KV_BYTES;
static_assert(BLOCK_M == 128, "STA_BLOCK_M must be 128: two consumer warpgroups of 64 rows");
static_assert(BLOCK_N == 128 || BLOCK_N == 192, "STA_BLOCK_N must be 128 or 192");
static_assert(STAGES >= 2 && SMEM_BYTES <= STA_SHARED_BYTES && STA_SHARED_BYTES <= 232448,
              "the query block and STA_STAGES K/V stages fit STA_SHARED_BYTES, at most 227 KiB");

// Packed key chunks (STA_KEY_SLICES = k > 0, which the Swift launcher sets for 3D layouts padded along H):
// the real keys of a tile padded along H alone are TILE_T runs of SLICE_KEYS = REAL_H · TILE_W keys, one
// per t-slice of TILE_H · TILE_W positions; such a tile is loaded as TILE_T / k chunks of k runs (a 4D
// TMA view of K and V whose boxes are k runs), with no hole and no mask.
constexpr int KEY_SLICES = STA_KEY_SLICES;
constexpr bool PACK_KEYS = KEY_SLICES > 0;
constexpr int SLICE = TILE_H * TILE_W;
constexpr int SLICE_KEYS = REAL_H * TILE_W;
static_assert(!PACK_KEYS || (PAD_H && TILE_T % KEY_SLICES == 0 && SLICE_KEYS <= 256 &&
                             (KEY_SLICES * SLICE_KEYS) % 16 == 0 && KEY_SLICES * SLICE_KEYS <= BLOCK_N),
              "STA_KEY_SLICES slices of REAL_H · TILE_W keys: the layout is padded along H, the slices divide "
              "TILE_T and make a multiple of 16 keys, at most STA_BLOCK_N");

// Narrow chunks, loaded and computed NARROW_N keys wide (Q·Kᵀ of NARROW_N columns, P·V over NARROW_N
// keys): with packed keys, the packed chunks; else a chunk whose keys all lie in its first 64 (the text's
// last chunk, e.g. hunyuan's 256 = 192 + 64 keys, and the short last chunk of tiles that BLOCK_N does not
// divide). Layouts with none compile without them.
constexpr int NARROW_N = PACK_KEYS ? KEY_SLICES * SLICE_KEYS : BOX_ROWS;
constexpr bool NARROW_CHUNKS =
    PACK_KEYS ||
    (BLOCK_N > NARROW_N && (TEXT_COUNT > 0 || (TILE_VOL % BLOCK_N != 0 && TILE_VOL % BLOCK_N <= NARROW_N)));

constexpr int CHUNKS_PER_TILE = (TILE_VOL + BLOCK_N - 1) / BLOCK_N;
constexpr int QBLOCKS_PER_TILE = (TILE_VOL + BLOCK_M - 1) / BLOCK_M;
constexpr int TEXT_QBLOCKS = (TEXT_COUNT + BLOCK_M - 1) / BLOCK_M;
// Which chunks can need a mask: video chunks when tiles hold holes or end in a partial chunk; text chunks
// whenever there is text (the valid length, hence the last chunk's length, is known at run time only).
constexpr bool VIDEO_MASKS = HAS_HOLES || (TILE_VOL % BLOCK_N != 0);
constexpr bool TEXT_MASKS = TEXT_COUNT > 0;

// ---- Warp roles, named barriers, register budgets ---------------------------------------------------

constexpr int THREADS = STA_THREADS;
constexpr int WARPGROUP_THREADS = 128;
static_assert(THREADS == 3 * WARPGROUP_THREADS, "STA_THREADS must be 384: one producer and two consumer warpgroups");
constexpr int CONSUMER_WARPS = 4;                    // warps of a consumer warpgroup; each arrives on "empty"
// Named barrier (0 is __syncthreads): consumer warpgroup w's own barrier is CONSUMER_BARRIER + w (128
// threads), for query rows the consumers gather themselves.
constexpr uint32_t CONSUMER_BARRIER = 1;
// Turn barriers: consumer warpgroup w waits on TURN_BARRIER + w (both warpgroups, 256 threads) before it
// issues a wgmma group and hands the turn over by arriving on the other's.
constexpr uint32_t TURN_BARRIER = 3;
// Registers per thread after setmaxnreg: the producer gives most of its share to the consumers
// (24 · 128 + 2 · 240 · 128 = 64,512 of the SM's 65,536).
constexpr uint32_t PRODUCER_REGISTERS = 24;
constexpr uint32_t CONSUMER_REGISTERS = 240;

}  // namespace sta
