// Sliding Tile Attention, Hopper backward kernel: its shape. The key block, the query chunk, the ring
// depth, threads and the shared-memory budget come from the Swift launcher (STABackwardHopperKernel.Shape)
// as -D definitions; the shared-memory map, the named barriers and the register budgets follow here.
// After sta_common.cuh.
//
// Shape constants (NVRTC -D, no defaults): STA_THREADS (one producer and two consumer warpgroups: 384),
// STA_BWD_BLOCK_N (key rows per CTA: 64 per consumer warpgroup), STA_BWD_CHUNK (query rows per chunk of
// the main loop: 64), STA_BWD_STAGES (Q/dO ring depth), STA_BWD_SHARED_BYTES (the dynamic shared memory
// the launch provides), STA_BWD_STATS_AHEAD (how much of a chunk's LSE2 and Δ the consumers read before the
// waits that precede their use: 2, all of both; 1, the first half of the LSE2; the launcher takes 2 unless
// that compile spills).

#pragma once

#include "sta_common.cuh"

#if !defined(STA_THREADS) || !defined(STA_BWD_BLOCK_N) || !defined(STA_BWD_CHUNK) || !defined(STA_BWD_STAGES) \
    || !defined(STA_BWD_SHARED_BYTES) || !defined(STA_BWD_STATS_AHEAD)
#error "define STA_THREADS, STA_BWD_BLOCK_N, STA_BWD_CHUNK, STA_BWD_STAGES, STA_BWD_SHARED_BYTES and STA_BWD_STATS_AHEAD (the Swift launcher chooses them)"
#endif

namespace sta {

// ---- Blocking ---------------------------------------------------------------------------------------

constexpr int BLOCK_N = STA_BWD_BLOCK_N;            // key rows per CTA: two consumer warpgroups of 64
constexpr int CHUNK = STA_BWD_CHUNK;                // query rows per chunk
constexpr int STAGES = STA_BWD_STAGES;
constexpr int BOX_ROWS = 64;                        // rows of one TMA box (64 columns × 64 rows)
constexpr int PANELS = HEAD_DIM / 64;               // 64-column panels (one 128-byte swizzle span each)
static_assert(BLOCK_N == 128, "STA_BWD_BLOCK_N must be 128: two consumer warpgroups of 64 key rows");
static_assert(CHUNK == 64, "STA_BWD_CHUNK must be 64: one wgmma N of the transposed scores");

constexpr int KV_PANEL_BYTES = BLOCK_N * 128;       // BLOCK_N rows of 128 bytes
constexpr int KV_BYTES = PANELS * KV_PANEL_BYTES;   // the key block of K (or V)
constexpr int CHUNK_PANEL_BYTES = CHUNK * 128;
constexpr int CHUNK_BYTES = PANELS * CHUNK_PANEL_BYTES;   // one chunk of Q (or dO)
constexpr int DS_BYTES = BLOCK_N * CHUNK * 2;       // dSᵀ of the chunk: BLOCK_N key rows × CHUNK queries
constexpr int DQ_BYTES = CHUNK * HEAD_DIM * 4;      // the chunk's dQ contribution, float32
constexpr int STATS_BYTES = 2 * CHUNK * 4;          // LSE2 and Δ of the chunk's queries

// Shared-memory map (offsets from the 1024-byte-aligned base): K | V | Q ring | dO ring | dSᵀ | dQ | stats.
constexpr int K_OFFSET = 0;
constexpr int V_OFFSET = K_OFFSET + KV_BYTES;
constexpr int Q_OFFSET = V_OFFSET + KV_BYTES;
constexpr int DO_OFFSET = Q_OFFSET + STAGES * CHUNK_BYTES;
constexpr int DS_OFFSET = DO_OFFSET + STAGES * CHUNK_BYTES;
constexpr int DQ_OFFSET = DS_OFFSET + DS_BYTES;
constexpr int STATS_OFFSET = DQ_OFFSET + DQ_BYTES;
constexpr int SMEM_BYTES = 1024 + STATS_OFFSET + STAGES * STATS_BYTES;
static_assert(STAGES >= 2 && SMEM_BYTES <= STA_BWD_SHARED_BYTES && STA_BWD_SHARED_BYTES <= 232448,
              "K, V, STA_BWD_STAGES Q/dO stages, dSᵀ, dQ and the statistics fit STA_BWD_SHARED_BYTES, at most 227 KiB");

constexpr int KBLOCKS_PER_TILE = (TILE_VOL + BLOCK_N - 1) / BLOCK_N;
constexpr int TEXT_KBLOCKS = (TEXT_COUNT + BLOCK_N - 1) / BLOCK_N;

// ---- Warp roles, named barriers, register budgets ---------------------------------------------------

constexpr int THREADS = STA_THREADS;
constexpr int WARPGROUP_THREADS = 128;
static_assert(THREADS == 3 * WARPGROUP_THREADS, "STA_THREADS must be 384: one producer and two consumer warpgroups");
constexpr int EMPTY_ARRIVALS = 8;                   // one per consumer warp
constexpr int STATS_ARRIVALS = 32;                  // the statistics warp's lanes (plus the TMA thread)
// Named barriers (0 is __syncthreads), both consumer warpgroups (256 threads): DS_READY once both halves
// of dSᵀ are in shared memory (and the previous chunk's dQ reduction has left the dQ buffer);
// DQ_READY once the chunk's dQ contribution is in shared memory (and every dQ product has read dSᵀ).
constexpr uint32_t DS_READY_BARRIER = 1;
constexpr uint32_t DQ_READY_BARRIER = 2;
// EPILOGUE_BARRIER once both warpgroups' dK and dV rows are staged in the K and V buffers.
constexpr uint32_t EPILOGUE_BARRIER = 3;
constexpr uint32_t CONSUMER_THREADS = 2 * WARPGROUP_THREADS;
// Registers per thread after setmaxnreg: 24 · 128 + 2 · 240 · 128 = 64,512 of the SM's 65,536.
constexpr uint32_t PRODUCER_REGISTERS = 24;
constexpr uint32_t CONSUMER_REGISTERS = 240;

}  // namespace sta
