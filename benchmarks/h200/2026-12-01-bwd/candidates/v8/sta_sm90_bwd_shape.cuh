// Sliding Tile Attention, Hopper backward kernel: its shape. The key block, the query chunk, the ring
// depth, threads and the shared-memory budget come from the Swift launcher (STABackwardHopperKernel.Shape)
// as -D definitions; the shared-memory map, the named barriers and the register budgets follow here.
// After sta_common.cuh.
//
// Shape constants (NVRTC -D, no defaults): STA_THREADS (one producer and two consumer warpgroups: 384),
// STA_BWD_BLOCK_N (key rows per CTA: 64 per consumer warpgroup), STA_BWD_CHUNK (query rows per chunk of
// the main loop: 64), STA_BWD_STAGES (Q/dO ring depth), STA_BWD_SHARED_BYTES (the dynamic shared memory
// the launch provides).

#pragma once

#include "sta_common.cuh"

#if !defined(STA_THREADS) || !defined(STA_BWD_BLOCK_N) || !defined(STA_BWD_CHUNK) || !defined(STA_BWD_STAGES) \
    || !defined(STA_BWD_SHARED_BYTES)
#error "define STA_THREADS, STA_BWD_BLOCK_N, STA_BWD_CHUNK, STA_BWD_STAGES and STA_BWD_SHARED_BYTES (the Swift launcher chooses them)"
#endif

namespace sta {

// ---- Blocking ---------------------------------------------------------------------------------------

constexpr int BLOCK_N = STA_BWD_BLOCK_N;            // key rows per CTA: two consumer warpgroups of 64
constexpr int CHUNK = STA_BWD_CHUNK;                // query rows per chunk
constexpr int BOX_ROWS = 64;                        // rows of one TMA box (64 columns × 64 rows)
constexpr int PANELS = HEAD_DIM / 64;               // 64-column panels (one 128-byte swizzle span each)
static_assert(BLOCK_N == 128, "STA_BWD_BLOCK_N must be 128: two consumer warpgroups of 64 key rows");
static_assert(CHUNK == 64, "STA_BWD_CHUNK must be 64: one wgmma N of the transposed scores");

constexpr int KV_PANEL_BYTES = BLOCK_N * 128;       // BLOCK_N rows of 128 bytes
constexpr int KV_BYTES = PANELS * KV_PANEL_BYTES;   // the key block of K (or V)
constexpr int CHUNK_PANEL_BYTES = CHUNK * 128;
constexpr int CHUNK_BYTES = PANELS * CHUNK_PANEL_BYTES;   // one chunk of Q (or dO)
constexpr int DS_BYTES = BLOCK_N * CHUNK * 2;       // dSᵀ of the chunk: BLOCK_N key rows × CHUNK queries
constexpr int DS_BUFFERS = 1;
constexpr int DQ_BYTES = CHUNK * HEAD_DIM * 4;      // the chunk's dQ contribution, float32, every column
constexpr int STATS_BYTES = 2 * CHUNK * 4;          // LSE2 and Δ of the chunk's queries

/// Shared memory with `stages` Q/dO stages: 1024 alignment bytes, K, V, the ring, the dSᵀ buffer, the dQ
/// buffer and the statistics.
__host__ __device__ constexpr int shared_bytes(int stages) {
    return 1024 + 2 * KV_BYTES + stages * 2 * CHUNK_BYTES + DS_BUFFERS * DS_BYTES + DQ_BYTES + stages * STATS_BYTES;
}
/// Q/dO ring depth: STA_BWD_STAGES, or one less when that many do not fit STA_BWD_SHARED_BYTES.
constexpr int STAGES = shared_bytes(STA_BWD_STAGES) <= STA_BWD_SHARED_BYTES ? STA_BWD_STAGES : STA_BWD_STAGES - 1;

// Shared-memory map (offsets from the 1024-byte-aligned base): K | V | Q ring | dO ring | dSᵀ | dQ | stats.
constexpr int K_OFFSET = 0;
constexpr int V_OFFSET = K_OFFSET + KV_BYTES;
constexpr int Q_OFFSET = V_OFFSET + KV_BYTES;
constexpr int DO_OFFSET = Q_OFFSET + STAGES * CHUNK_BYTES;
constexpr int DS_OFFSET = DO_OFFSET + STAGES * CHUNK_BYTES;
constexpr int DQ_OFFSET = DS_OFFSET + DS_BUFFERS * DS_BYTES;
constexpr int STATS_OFFSET = DQ_OFFSET + DQ_BYTES;
constexpr int SMEM_BYTES = shared_bytes(STAGES);
static_assert(STAGES >= 2 && SMEM_BYTES <= STA_BWD_SHARED_BYTES && STA_BWD_SHARED_BYTES <= 232448,
              "K, V, two Q/dO stages or more, dSᵀ, dQ and the statistics fit STA_BWD_SHARED_BYTES, at most 227 KiB");

constexpr int KBLOCKS_PER_TILE = (TILE_VOL + BLOCK_N - 1) / BLOCK_N;
constexpr int TEXT_KBLOCKS = (TEXT_COUNT + BLOCK_N - 1) / BLOCK_N;
constexpr int QCHUNKS_PER_TILE = (TILE_VOL + CHUNK - 1) / CHUNK;

// ---- Warp roles, named barriers, register budgets ---------------------------------------------------

constexpr int THREADS = STA_THREADS;
constexpr int WARPGROUP_THREADS = 128;
static_assert(THREADS == 3 * WARPGROUP_THREADS, "STA_THREADS must be 384: one producer and two consumer warpgroups");
constexpr int EMPTY_ARRIVALS = 8;                   // one per consumer warp
constexpr int STATS_ARRIVALS = 32;                  // the statistics warp's lanes (plus the TMA thread)
// Named barriers (0 is __syncthreads), both consumer warpgroups (256 threads) unless said otherwise:
// DS_READY + (i mod 2): both halves of chunk i's dSᵀ are in shared memory. The warpgroup that computes
//   chunk i's dQ waits on it; the other only arrives (after its last bulk reduction has read the dQ
//   buffer) and goes on with the next chunk's products, so the two run up to a chunk apart.
// DS_FREE: chunk i's dQ product has read dSᵀ. Its warpgroup arrives; the other waits before writing
//   chunk i + 1's dSᵀ.
// DQ_STAGED + cw, one warpgroup (128 threads): its dQ contribution is in the dQ buffer.
constexpr uint32_t DS_READY_BARRIER = 1;
constexpr uint32_t DS_FREE_BARRIER = 3;
constexpr uint32_t DQ_STAGED_BARRIER = 4;
constexpr uint32_t CONSUMER_THREADS = 2 * WARPGROUP_THREADS;
// Registers per thread after setmaxnreg: 24 · 128 + 2 · 240 · 128 = 64,512 of the SM's 65,536.
constexpr uint32_t PRODUCER_REGISTERS = 24;
constexpr uint32_t CONSUMER_REGISTERS = 240;

}  // namespace sta
