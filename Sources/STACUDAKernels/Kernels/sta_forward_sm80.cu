// Sliding Tile Attention forward pass for NVIDIA sm_80 and newer (mma.sync tensor cores), compiled at run
// time by NVRTC with the headers sta_common.cuh and sta_sm80.cuh.
//
// Semantics (spec §2-3). Q, K, V, O are [B, H, S, D] contiguous 16-bit tensors, S = NUM_TILES·TILE_VOL +
// TEXT_COUNT: video tokens in tile-contiguous order (holes included), then text tokens. LSE is [B, H, S]
// float32, natural log. A video query of tile q, head h, attends the real keys of the key tiles
// key_tiles[key_tile_start[w·NUM_TILES + q] .. key_tile_start[w·NUM_TILES + q + 1]) with
// w = window_of_head[h], plus the valid text keys [V, V + text_valid) of its batch row. A valid text query
// attends every real video key and every valid text key. Rows that attend nothing (holes, padding text, rows
// with no key) get O = 0 and LSE = -inf. The valid text length of batch row b is text_valid[b] (a device
// array of `batch` ints) or, when text_valid is null, default_text_valid; either is clamped into
// 0 ... TEXT_COUNT. It is a run-time value: one compiled kernel serves every prompt length. NaN or ±inf in
// the q of a row, or in the k or v of a key the row attends, makes that row's O and LSE NaN (as PyTorch
// does); NaN in rows nothing attends (holes, padding text) is never read.
//
// Compile-time constants (NVRTC -D options): the problem's (sta_common.cuh) and the kernel shape, which the
// Swift launcher (STAForwardKernel.Shape) chooses and nothing here defaults: STA_THREADS, STA_ROWS_PER_WARP
// (query rows per warp: 16 or 32, one or two m16 row blocks), STA_BLOCK_M (query rows per block),
// STA_BLOCK_N (keys per chunk: one shared-memory buffer and one barrier), STA_STEP_N (keys per register step
// inside a chunk), STA_MIN_BLOCKS_PER_SM (the occupancy __launch_bounds__ asks for), STA_Q_IN_REGISTERS (1: Q
// fragments held in registers, 0: re-read from shared memory), STA_SHARED_BYTES (the dynamic shared memory
// the launch provides).
//
// Launch: block = STA_THREADS, grid = (TEXT_Q_BLOCKS + VIDEO_Q_BLOCKS, heads, batch), dynamic shared memory
// STA_SHARED_BYTES ≥ (BLOCK_M + 4·BLOCK_N)·HEAD_DIM·2 bytes. blockIdx.x < TEXT_Q_BLOCKS are the text query
// blocks (they do the most work, so they start first); the rest are video query blocks, QBLOCKS_PER_TILE per
// tile, in tile order. A query block never straddles two tiles; a key chunk never straddles two tiles.
//
// Structure: each warp owns ROWS_PER_WARP query rows, one m16 row block (16) or two (32) that share every K
// and V fragment the warp loads (half the shared-memory reads of P·V, a quarter fewer for Q·Kᵀ). Q is held
// in registers (16 rows at D 128) or re-read from shared memory per head-dim step (32 rows; D 64). The key
// chunks (BLOCK_N keys of one key tile, or of the text) stream through a double-buffered shared-memory ring
// with cp.async, the next chunk in flight while the current one is computed, STEP_N keys at a time:
// S = Q·Kᵀ, mask (only chunks with holes or past the end of a tile or the text), online softmax in fp32 —
// exp2 of one FFMA (score · scale · log2 e − base), the base (a running maximum) moved and O rescaled only
// when a row's maximum rises more than RESCALE_SLACK above it; once every row of a warp has a finite base
// the step's row maxima are not looked for, and a thread's row sum past 2^RESCALE_SLACK moves the base
// instead — and O += P·V. The epilogue normalises O,
// stages it through shared memory for 16-byte stores, and writes LSE (NaN for a row whose output overflowed,
// for the exact-rows pass). Loads of hole keys, padding text keys and positions past a tile or the text are
// zero-filled without reading global memory, so garbage (even NaN) in those rows never reaches a sum;
// chunks made only of holes are skipped. Registers (ptxas, NVRTC 13, sm_90a): 123-128 at D 64 (two blocks
// of 256 threads per SM), about 210-225 for 16 rows and 232-255 for 32 rows at D 128; the launcher takes
// the first candidate shape without spills (`sta kernels` lists each specialisation's).

#include "sta_common.cuh"
#include "sta_sm80.cuh"

#if !defined(STA_ROWS_PER_WARP) || !defined(STA_BLOCK_M) || !defined(STA_BLOCK_N) || !defined(STA_STEP_N) \
    || !defined(STA_MIN_BLOCKS_PER_SM) || !defined(STA_Q_IN_REGISTERS) || !defined(STA_SHARED_BYTES)
#error "define STA_ROWS_PER_WARP, STA_BLOCK_M, STA_BLOCK_N, STA_STEP_N, STA_MIN_BLOCKS_PER_SM, STA_Q_IN_REGISTERS and STA_SHARED_BYTES (the Swift launcher chooses them)"
#endif

namespace sta {

// ---------------------------------------------------------------------------------------------------------
// Kernel shape
// ---------------------------------------------------------------------------------------------------------

constexpr int ROWS_PER_WARP = STA_ROWS_PER_WARP;   // query rows per warp: M_TILES m16 MMA row blocks
constexpr int M_TILES = ROWS_PER_WARP / 16;
constexpr int BLOCK_M = STA_BLOCK_M;   // query rows per block
constexpr int BLOCK_N = STA_BLOCK_N;   // keys per chunk (one shared-memory buffer, one barrier)
constexpr int STEP_N = STA_STEP_N;     // keys per register step: S = Q·Kᵀ, softmax, O += P·V over this many
constexpr int MIN_BLOCKS_PER_SM = STA_MIN_BLOCKS_PER_SM;
constexpr bool Q_IN_REGISTERS = STA_Q_IN_REGISTERS != 0;
static_assert(ROWS_PER_WARP == 16 || ROWS_PER_WARP == 32, "STA_ROWS_PER_WARP must be 16 or 32");
static_assert(BLOCK_M == ROWS_PER_WARP * WARPS, "STA_BLOCK_M must be STA_ROWS_PER_WARP rows per warp");
static_assert(BLOCK_M <= THREADS, "one thread per query row for the row-level steps");
static_assert(BLOCK_N % 32 == 0 && BLOCK_N <= THREADS, "STA_BLOCK_N must be a multiple of 32, at most STA_THREADS");
static_assert(STEP_N % 16 == 0 && BLOCK_N % STEP_N == 0, "STA_STEP_N must be a multiple of 16 that divides STA_BLOCK_N");

constexpr int QBLOCKS_PER_TILE = (TILE_VOL + BLOCK_M - 1) / BLOCK_M;
constexpr int VIDEO_Q_BLOCKS = NUM_TILES * QBLOCKS_PER_TILE;
constexpr int TEXT_Q_BLOCKS = (TEXT_COUNT + BLOCK_M - 1) / BLOCK_M;
constexpr int CHUNKS_PER_TILE = (TILE_VOL + BLOCK_N - 1) / BLOCK_N;

constexpr int Q_TILE_BYTES = BLOCK_M * ROW_BYTES;
constexpr int KV_TILE_BYTES = BLOCK_N * ROW_BYTES;
constexpr int SHARED_BYTES = Q_TILE_BYTES + 4 * KV_TILE_BYTES;   // Q | K[2] | V[2]

static_assert(TEXT_Q_BLOCKS + VIDEO_Q_BLOCKS <= 0x7fffffff, "grid.x fits");
static_assert(Q_TILE_BYTES % 1024 == 0 && KV_TILE_BYTES % 1024 == 0, "tile offsets keep bits 0-9 free");
static_assert(SHARED_BYTES <= STA_SHARED_BYTES, "the tiles fit the dynamic shared memory STA_SHARED_BYTES provides");

// One chunk of keys: `length` consecutive sequence positions from `start` (length ≤ BLOCK_N), inside one key
// tile (`tile` ≥ 0) or inside the valid text (`tile` = -1).
struct KeyChunk {
    int start;
    int length;
    int tile;
};

// The index-th key chunk of a query block: first CHUNKS_PER_TILE chunks for each of its `tile_count` key
// tiles (tiles[i], or tile i itself when `tiles` is null), then ⌈text_valid / BLOCK_N⌉ chunks of valid text.
__device__ __forceinline__ KeyChunk key_chunk(int index, int tile_count, const int* tiles, int text_valid) {
    KeyChunk chunk;
    if (index < tile_count * CHUNKS_PER_TILE) {
        const int tile_slot = index / CHUNKS_PER_TILE;
        const int in_tile = (index - tile_slot * CHUNKS_PER_TILE) * BLOCK_N;
        chunk.tile = tiles != nullptr ? __ldg(tiles + tile_slot) : tile_slot;
        chunk.start = chunk.tile * TILE_VOL + in_tile;
        chunk.length = min(BLOCK_N, TILE_VOL - in_tile);
    } else {
        const int in_text = (index - tile_count * CHUNKS_PER_TILE) * BLOCK_N;
        chunk.tile = -1;
        chunk.start = VIDEO_TOKENS + in_text;
        chunk.length = min(BLOCK_N, text_valid - in_text);
    }
    return chunk;
}

// ---------------------------------------------------------------------------------------------------------
// Register tiles (per warp: 16 query rows)
// ---------------------------------------------------------------------------------------------------------
//
// mma.m16n8k16 fragment layouts (PTX ISA), with g = lane / 4 (groupID) and c = lane % 4 (threadID_in_group):
//   A 16×16 (row):  a0 = (row g,   cols 2c, 2c+1)   a1 = (row g+8, cols 2c, 2c+1)
//                   a2 = (row g,   cols 2c+8, +9)   a3 = (row g+8, cols 2c+8, +9)
//   B 16×8  (col):  b0 = (k 2c, 2c+1; n g)          b1 = (k 2c+8, 2c+9; n g)
//   C/D 16×8 fp32:  d0, d1 = (row g, cols 2c, 2c+1) d2, d3 = (row g+8, cols 2c, 2c+1)
// A thread therefore owns rows g and g+8 of its warp's 16 rows in every accumulator: row statistics live in
// two registers per thread and are reduced over the 4 threads of a group (shuffle xor 1 and 2).

// Fragment addresses: lane_offset (sta_sm80.cuh), one XOR per head-dim step.

// Q fragments for the warp's rows: fragment(m, k) is the A operand for rows 16m .. 16m+15 of the warp and
// head-dim columns 16k .. 16k+15.
// ldmatrix.x4 matrix i ← rows (i & 1)·8 + 0..7, columns 16k + (i >> 1)·8 + 0..7, so registers 0..3 are
// exactly a0..a3 above: lane l points at row (l >> 3 & 1)·8 + (l & 7), unit 2k + (l >> 4).
// Row block m is 16 rows further down the tile: rows 16 apart have the same swizzle, so its fragments sit
// at the same lane offset plus 16 · ROW_BYTES. With Q_IN_REGISTERS the fragments are loaded once
// (M_TILES · HEAD_DIM / 4 registers); otherwise they are re-read from the Q tile at every use, which costs
// shared-memory bandwidth (+1/8 at D 64) but keeps D 64 within 128 registers (two blocks per SM) and leaves
// room for two row blocks per warp at D 128.
struct QFragments {
    uint32_t a[Q_IN_REGISTERS ? M_TILES : 1][Q_IN_REGISTERS ? HEAD_DIM / 16 : 1][4];
    uint32_t base;     // shared address of the Q tile (its offset from the kernel's shared base is 0)
    uint32_t offset;   // lane_offset of this lane's row and unit half

    __device__ __forceinline__ void load(uint32_t q_tile, int warp_row, int lane) {
        base = q_tile;
        offset = lane_offset(warp_row + ((lane >> 3) & 1) * 8 + (lane & 7), lane >> 4);
        if constexpr (Q_IN_REGISTERS) {
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
#pragma unroll
                for (int k = 0; k < HEAD_DIM / 16; ++k)
                    ptx::ldmatrix_x4(a[m][k], base + m * 16 * ROW_BYTES + (offset ^ (k << 5)));
            }
        }
    }

    __device__ __forceinline__ void fragment(int m, int k, uint32_t (&out)[4]) const {
        if constexpr (Q_IN_REGISTERS) {
            out[0] = a[m][k][0], out[1] = a[m][k][1], out[2] = a[m][k][2], out[3] = a[m][k][3];
        } else {
            ptx::ldmatrix_x4(out, base + m * 16 * ROW_BYTES + (offset ^ (k << 5)));
        }
    }
};

// S = Q·Kᵀ for one step of STEP_N keys: s[m][n] is the 16×8 accumulator of row block m and keys 8n .. 8n+7
// of the step. Each K fragment is loaded once and used by every row block of the warp.
// B(k = head dim d, n = key j) = K[j][d]: b0 holds K[j = g][d = 2c, 2c+1], two adjacent values of one K row,
// i.e. a non-transposed ldmatrix of K rows. Matrix i of the x4 ← keys 16p + (i >> 1)·8 + 0..7, columns
// 16k + (i & 1)·8 + 0..7: registers 0, 1 = b0, b1 of key block 2p; registers 2, 3 = b0, b1 of block 2p+1.
// `k_offset` = offset of the step's first key row + lane_offset((lane >> 4)·8 + (lane & 7), (lane >> 3) & 1).
__device__ __forceinline__ void multiply_qk(float (&s)[M_TILES][STEP_N / 8][4], const QFragments& q,
                                            uint32_t shared_base, uint32_t k_offset) {
#pragma unroll
    for (int m = 0; m < M_TILES; ++m) {
#pragma unroll
        for (int n = 0; n < STEP_N / 8; ++n) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < HEAD_DIM / 16; ++k) {
        const uint32_t address = shared_base + (k_offset ^ (k << 5));
        uint32_t a[M_TILES][4];
#pragma unroll
        for (int m = 0; m < M_TILES; ++m) q.fragment(m, k, a[m]);
#pragma unroll
        for (int p = 0; p < STEP_N / 16; ++p) {
            uint32_t b[4];
            ptx::ldmatrix_x4(b, address + p * 16 * ROW_BYTES);
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
                ptx::mma_16816(s[m][2 * p], a[m], b[0], b[1]);
                ptx::mma_16816(s[m][2 * p + 1], a[m], b[2], b[3]);
            }
        }
    }
}

// O += P·V for one step. P comes straight from the S accumulators: the A operand of row block m for keys
// 16j .. 16j+15 is a0 = (row g, keys 16j+2c, +1) = s[m][2j][0..1], a1 = (row g+8, same keys) = s[m][2j][2..3],
// a2 = s[m][2j+1][0..1], a3 = s[m][2j+1][2..3], packed to 16 bits. Each V fragment serves every row block.
// B(k = key j, n = head dim d) = V[j][d]: b0 holds V[j = 2c, 2c+1][d = g], two values of one V column,
// i.e. a transposed ldmatrix of V rows. Matrix i of the x4.trans ← keys 16j + (i & 1)·8 + 0..7, columns
// 16p + (i >> 1)·8 + 0..7: registers 0, 1 = b0, b1 of head-dim block 2p; registers 2, 3 = block 2p+1.
// `v_offset` = offset of the step's first value row + lane_offset(((lane >> 3) & 1)·8 + (lane & 7), lane >> 4).
__device__ __forceinline__ void multiply_pv(float (&o)[M_TILES][HEAD_DIM / 8][4],
                                            const float (&p)[M_TILES][STEP_N / 8][4], uint32_t shared_base,
                                            uint32_t v_offset) {
#pragma unroll
    for (int j = 0; j < STEP_N / 16; ++j) {
        uint32_t a[M_TILES][4];
#pragma unroll
        for (int m = 0; m < M_TILES; ++m) {
            a[m][0] = ptx::pack2(p[m][2 * j][0], p[m][2 * j][1]);
            a[m][1] = ptx::pack2(p[m][2 * j][2], p[m][2 * j][3]);
            a[m][2] = ptx::pack2(p[m][2 * j + 1][0], p[m][2 * j + 1][1]);
            a[m][3] = ptx::pack2(p[m][2 * j + 1][2], p[m][2 * j + 1][3]);
        }
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 16; ++d) {
            uint32_t b[4];
            ptx::ldmatrix_x4_trans(b, shared_base + (v_offset ^ (d << 5)) + j * 16 * ROW_BYTES);
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
                ptx::mma_16816(o[m][2 * d], a[m], b[0], b[1]);
                ptx::mma_16816(o[m][2 * d + 1], a[m], b[2], b[3]);
            }
        }
    }
}

// How far the running maximum may rise above the exponent base before O and the sums are rescaled (log2
// units): probabilities then stay ≤ 2^RESCALE_SLACK = 256, exact in fp32 and in bf16/fp16 alike, and the
// 128-multiply rescale of a 32-row accumulator runs only when some row's maximum rose by more than that —
// in practice on the first chunks of a row, not on every step.
constexpr float RESCALE_SLACK = 8.0f;

// Online softmax state of the thread's two rows (g and g+8) of one row block: the exponent base of each row
// (log2 units, scaled scores; -inf until the row has seen a key) and the thread's partial sum of
// exp2(score − base) over the columns it owns. The base trails the true running maximum by at most
// RESCALE_SLACK; the sum and O are relative to it, so LSE = (base + log2 sum) · ln 2 as with an exact one.
struct RowState {
    float base[2];
    float sum[2];

    __device__ __forceinline__ void reset() {
        base[0] = base[1] = neg_inf();
        sum[0] = sum[1] = 0.0f;
    }

    // Turns the raw scores s of one step (s·scale_log2 are the log2-unit scores; masked keys already give
    // -inf there) into probabilities exp2(s·scale_log2 − base), one FFMA and one ex2 per score. Once every
    // row of the warp has a finite base, the step's row maxima are not looked for (lazy()); until then the
    // base moves to a row's maximum when that passes it by more than RESCALE_SLACK (exact()).
    // `scale_log2` must be positive (the caller pre-scales the scores and passes 1 otherwise).
    __device__ __forceinline__ void update(float (&s)[STEP_N / 8][4], float (&o)[HEAD_DIM / 8][4],
                                           float scale_log2) {
        if (__any_sync(0xffffffffu, base[0] == neg_inf() || base[1] == neg_inf())) {
            exact(s, o, scale_log2);
        } else {
            lazy(s, o, scale_log2);
        }
    }

    // With the row maxima: the base moves (and o and the sums are rescaled by exp2(old base − new base))
    // only when a row's maximum passed it by more than RESCALE_SLACK; the decision is per warp, so the
    // rescale is skipped as a whole.
    __device__ __forceinline__ void exact(float (&s)[STEP_N / 8][4], float (&o)[HEAD_DIM / 8][4], float scale_log2) {
        float new_max[2];
        bool raise = false;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float chunk_max = neg_inf();
#pragma unroll
            for (int n = 0; n < STEP_N / 8; ++n) chunk_max = fmaxf(chunk_max, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
            chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xffffffffu, chunk_max, 1));
            chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xffffffffu, chunk_max, 2));
            // scale_log2 > 0, so the largest raw score gives the largest scaled one (-inf stays -inf).
            new_max[r] = fmaxf(base[r], chunk_max * scale_log2);
            // While the base is -inf any attended key raises it; +inf raises it too (and the row turns NaN).
            raise = raise || new_max[r] > base[r] + RESCALE_SLACK;
        }
        if (__any_sync(0xffffffffu, raise)) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                if (new_max[r] > base[r] + RESCALE_SLACK) move(r, new_max[r], o);
            }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            // While every key so far is masked the base is -inf: subtract 0 instead, so that
            // exp2(-inf − base) = 0 rather than NaN.
            const float minus_base = base[r] == neg_inf() ? 0.0f : -base[r];
            float step_sum = 0.0f;
#pragma unroll
            for (int n = 0; n < STEP_N / 8; ++n) {
                s[n][2 * r] = ptx::exp2_approx(fmaf(s[n][2 * r], scale_log2, minus_base));
                s[n][2 * r + 1] = ptx::exp2_approx(fmaf(s[n][2 * r + 1], scale_log2, minus_base));
                step_sum += s[n][2 * r] + s[n][2 * r + 1];
            }
            sum[r] += step_sum;
        }
    }

    // Without the row maxima (finite bases): the exponentials are taken against the bases as they stand; a
    // base moves only when the thread's sum of a row's step passes 2^RESCALE_SLACK (every probability of
    // the step below it until then), and then by log2 of the row's step sum, which brings the step's
    // probabilities to at most 1. An exponential that overflows (a score 128 or more above the base) or a
    // step sum past 2^125 (moved_base) makes the row's sum and output NaN, and the epilogue leaves the row
    // to the exact-rows pass.
    __device__ __forceinline__ void lazy(float (&s)[STEP_N / 8][4], float (&o)[HEAD_DIM / 8][4], float scale_log2) {
        constexpr float LIMIT = 256.0f;  // 2^RESCALE_SLACK
        float step_sum[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            step_sum[r] = 0.0f;
#pragma unroll
            for (int n = 0; n < STEP_N / 8; ++n) {
                s[n][2 * r] = ptx::exp2_approx(fmaf(s[n][2 * r], scale_log2, -base[r]));
                s[n][2 * r + 1] = ptx::exp2_approx(fmaf(s[n][2 * r + 1], scale_log2, -base[r]));
                step_sum[r] += s[n][2 * r] + s[n][2 * r + 1];
            }
        }
        if (__any_sync(0xffffffffu, step_sum[0] > LIMIT || step_sum[1] > LIMIT)) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                // The row's step sum (its four threads get the same value).
                float row = step_sum[r] + __shfl_xor_sync(0xffffffffu, step_sum[r], 1);
                row += __shfl_xor_sync(0xffffffffu, row, 2);
                if (row > LIMIT) {
                    const float factor = move(r, moved_base(base[r], row), o);
                    step_sum[r] *= factor;
#pragma unroll
                    for (int n = 0; n < STEP_N / 8; ++n) {
                        s[n][2 * r] *= factor;
                        s[n][2 * r + 1] *= factor;
                    }
                }
            }
        }
        sum[0] += step_sum[0];
        sum[1] += step_sum[1];
    }

    // Moves row r's base to `to` (> base, or NaN: the row goes NaN), rescaling o and the sum by exp2(base − to),
    // which it returns.
    __device__ __forceinline__ float move(int r, float to, float (&o)[HEAD_DIM / 8][4]) {
        // exp2(-inf − x) = 0: a row that had seen nothing has a zero sum and zero O anyway.
        const float correction = ptx::exp2_approx(base[r] - to);
        base[r] = to;
        sum[r] *= correction;
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) {
            o[d][2 * r] *= correction;
            o[d][2 * r + 1] *= correction;
        }
        return correction;
    }
};

// The block's query rows: a text block (`tile` = -1) or part of one video tile.
struct QueryBlock {
    int first;         // first query position of the block
    int rows;          // query positions of the block inside S (the rest of BLOCK_M is padding)
    int tile;          // query tile, or -1 for a text block
    int tile_offset;   // offset of the first query in its tile

    // Block `block` of the grid's x axis: text blocks first, then QBLOCKS_PER_TILE blocks per video tile.
    __device__ __forceinline__ explicit QueryBlock(int block) {
        if (block < TEXT_Q_BLOCKS) {
            first = VIDEO_TOKENS + block * BLOCK_M;
            rows = min(BLOCK_M, SEQ - first);
            tile = -1;
            tile_offset = 0;
        } else {
            const int video_block = block - TEXT_Q_BLOCKS;
            tile = video_block / QBLOCKS_PER_TILE;
            tile_offset = (video_block - tile * QBLOCKS_PER_TILE) * BLOCK_M;
            first = tile * TILE_VOL + tile_offset;
            rows = min(BLOCK_M, TILE_VOL - tile_offset);
        }
    }

    // Whether row r of the block is a real query (inside S, not a hole, not padding text) when the batch row
    // has `text` valid text positions.
    __device__ __forceinline__ bool is_real(int r, int text) const {
        if (r >= rows) return false;
        return tile >= 0 ? !is_hole(tile, tile_offset + r) : first - VIDEO_TOKENS + r < text;
    }
};

// The first element of this block's (batch, head) in a [B, H, S, ·] tensor, in units of `per_position`
// elements per sequence position. Reads the block indices through volatile asm so that the compiler
// recomputes the offset where it is used (a few integer instructions) instead of holding it in registers
// through the main loop, where the two row blocks' accumulators need them.
__device__ __forceinline__ size_t head_offset(int heads, int per_position) {
    return (static_cast<size_t>(ptx::block_index_z()) * heads + ptx::block_index_y()) * static_cast<size_t>(SEQ)
           * per_position;
}

}  // namespace sta

// ---------------------------------------------------------------------------------------------------------
// The kernel
// ---------------------------------------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(sta::THREADS, sta::MIN_BLOCKS_PER_SM)
sta_forward_sm80(const uint16_t* q, const uint16_t* k, const uint16_t* v, uint16_t* o, float* lse,
                 const int* window_of_head, const int* key_tile_start, const int* key_tiles, int heads, float scale,
                 const int* text_valid, int default_text_valid) {
    using namespace sta;
    extern __shared__ __align__(128) unsigned char shared[];
    __shared__ uint32_t key_mask[2][BLOCK_N / 32];   // per buffered chunk: bit j % 32 of word j / 32 = key j is attended
    __shared__ int row_text_shared;                    // valid text positions of this batch row

    const int thread = threadIdx.x, lane = thread & 31, warp = thread >> 5;
    const int head = blockIdx.y, batch = blockIdx.z;
    // The valid text length of this batch row. After the first barrier it is read from shared memory where
    // needed rather than held in a register: at D 64 two blocks share an SM within 128 registers.
    const int row_text = row_text_valid(text_valid, default_text_valid, batch);
    if (thread == 0) row_text_shared = row_text;

    // ---- Which queries, which keys ----
    const QueryBlock block(blockIdx.x);
    int key_tile_count = NUM_TILES;
    const int* key_tile_list = nullptr;   // null: every tile, in order
    if (block.tile >= 0) {
        const int row = __ldg(window_of_head + head) * NUM_TILES + block.tile;
        const int begin = __ldg(key_tile_start + row);
        key_tile_count = __ldg(key_tile_start + row + 1) - begin;
        key_tile_list = key_tiles + begin;
    }

    const uint32_t q_tile_smem = ptx::shared_address(shared);
    const uint32_t k_tile_smem = q_tile_smem + Q_TILE_BYTES;                    // K[buffer] at + buffer·KV_TILE_BYTES
    const uint32_t v_tile_smem = k_tile_smem + 2 * KV_TILE_BYTES;               // V[buffer] likewise

    // ---- A block without real queries only writes O = 0, LSE = -inf ----
    if (!__syncthreads_or(thread < BLOCK_M && block.is_real(thread, row_text))) {
        const uint4 zero = make_uint4(0, 0, 0, 0);
        uint16_t* o_block = o + (head_offset(heads, HEAD_DIM) + static_cast<size_t>(block.first) * HEAD_DIM);
        for (int index = thread; index < block.rows * ROW_UNITS; index += THREADS) {
            reinterpret_cast<uint4*>(o_block)[index] = zero;
        }
        if (thread < block.rows) lse[head_offset(heads, 1) + block.first + thread] = neg_inf();
        return;
    }

    // ---- Prologue: Q, then the first key chunk, in two commit groups ----
    load_tile_async<BLOCK_M>(q_tile_smem, q + head_offset(heads, HEAD_DIM), block.first, block.rows,
                             [](int) { return true; });
    ptx::cp_async_commit();

    const int chunk_count = key_tile_count * CHUNKS_PER_TILE + (row_text + BLOCK_N - 1) / BLOCK_N;
    // Issues the loads of chunk `index` into buffer `buffer`, records which keys it attends, and returns
    // (through the references) whether this thread loaded an attended key, whether the chunk needs masking
    // and how many positions it has. A chunk of a tile without holes (every chunk on a canvas the tiles
    // divide) takes the short path: its first `length` rows are all attended.
    auto load_chunk = [&](int index, int buffer, bool& any_valid, bool& needs_mask, int& length) {
        const KeyChunk chunk = key_chunk(index, key_tile_count, key_tile_list, row_text_shared);
        const uint32_t k_to = k_tile_smem + buffer * KV_TILE_BYTES, v_to = v_tile_smem + buffer * KV_TILE_BYTES;
        length = chunk.length;
        if (chunk.tile >= 0 && tile_may_hold_holes(chunk.tile)) {
            const int tile_base = chunk.tile * TILE_VOL;
            auto keep = [&](int row) { return !is_hole(chunk.tile, chunk.start - tile_base + row); };
            const size_t head_first = head_offset(heads, HEAD_DIM);
            load_tile_async<BLOCK_N>(k_to, k + head_first, chunk.start, chunk.length, keep);
            any_valid = load_tile_async<BLOCK_N>(v_to, v + head_first, chunk.start, chunk.length, keep);
            needs_mask = true;
            if (thread < BLOCK_N) {   // whole warps (BLOCK_N is a multiple of 32)
                const uint32_t bits = __ballot_sync(0xffffffffu, thread < chunk.length && keep(thread));
                if (lane == 0) key_mask[buffer][warp] = bits;
            }
        } else {
            const size_t first = head_offset(heads, HEAD_DIM) + static_cast<size_t>(chunk.start) * HEAD_DIM;
            load_rows_async<BLOCK_N>(k_to, k + first, chunk.length);
            load_rows_async<BLOCK_N>(v_to, v + first, chunk.length);
            any_valid = true;
            needs_mask = chunk.length < BLOCK_N;
            if (needs_mask && thread < BLOCK_N / 32) {
                const int from_word = chunk.length - 32 * thread;   // keys of word `thread` below the length
                key_mask[buffer][thread] = from_word >= 32 ? 0xffffffffu : from_word <= 0 ? 0u : (1u << from_word) - 1u;
            }
        }
    };
    bool next_any_valid = false, next_needs_mask = false;
    int next_length = 0;
    if (chunk_count > 0) load_chunk(0, 0, next_any_valid, next_needs_mask, next_length);
    ptx::cp_async_commit();

    // Q has landed once at most the chunk group is pending; every thread's part of it after the barrier.
    ptx::cp_async_wait<1>();
    __syncthreads();
    QFragments q_fragments;
    q_fragments.load(q_tile_smem, warp * ROWS_PER_WARP, lane);

    float acc[M_TILES][HEAD_DIM / 8][4];
    RowState state[M_TILES];
#pragma unroll
    for (int m = 0; m < M_TILES; ++m) {
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) acc[m][d][0] = acc[m][d][1] = acc[m][d][2] = acc[m][d][3] = 0.0f;
        state[m].reset();
    }
    const uint32_t shared_base = q_tile_smem;
    const uint32_t k_lane_offset = Q_TILE_BYTES + lane_offset((lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1);
    const uint32_t v_lane_offset =
        Q_TILE_BYTES + 2 * KV_TILE_BYTES + lane_offset(((lane >> 3) & 1) * 8 + (lane & 7), lane >> 4);
    const float scale_log2 = scale * LOG2E;
    // A positive scale folds into the exponent's FFMA (the largest raw score is the largest scaled one);
    // otherwise, and on chunks that need masking, the scores are scaled first and the FFMA multiplies by 1.
    const bool scale_positive = scale_log2 > 0.0f;

    // ---- Main loop: chunk i computes from buffer i % 2 while chunk i + 1 loads into the other ----
    for (int index = 0; index < chunk_count; ++index) {
        const int buffer = index & 1;
        ptx::cp_async_wait<0>();
        // After this barrier chunk `index` is in shared memory for every thread, and every warp has finished
        // chunk index − 1, so its buffer may be refilled. A chunk made only of holes is skipped.
        const bool any_valid = __syncthreads_or(next_any_valid);
        const bool needs_mask = next_needs_mask;
        const int length = next_length;
        if (index + 1 < chunk_count) load_chunk(index + 1, buffer ^ 1, next_any_valid, next_needs_mask, next_length);
        ptx::cp_async_commit();
        if (!any_valid) continue;

        const bool prescale = needs_mask || !scale_positive;
        const float exponent_scale = prescale ? 1.0f : scale_log2;
#pragma unroll
        for (int step = 0; step < BLOCK_N / STEP_N; ++step) {
            if (step > 0 && step * STEP_N >= length) break;   // a short chunk (text end) ends early
            const uint32_t step_offset = buffer * KV_TILE_BYTES + step * STEP_N * ROW_BYTES;
            float s[M_TILES][STEP_N / 8][4];
            multiply_qk(s, q_fragments, shared_base, k_lane_offset + step_offset);
#pragma unroll
            for (int m = 0; m < M_TILES; ++m) {
                if (prescale) {
#pragma unroll
                    for (int n = 0; n < STEP_N / 8; ++n) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) s[m][n][e] *= scale_log2;
                    }
                    if (needs_mask) {
                        // Column of s[m][n][e]: 8n + 2c + (e & 1) of the step, the same for rows g and g+8.
#pragma unroll
                        for (int word = 0; word < (STEP_N + 31) / 32; ++word) {
                            const uint32_t bits = key_mask[buffer][(step * STEP_N) / 32 + word]
                                                  >> ((step * STEP_N) % 32 + 2 * (lane & 3));
#pragma unroll
                            for (int n = 4 * word; n < 4 * word + 4 && n < STEP_N / 8; ++n) {
                                if (!(bits & (1u << (8 * (n % 4))))) s[m][n][0] = s[m][n][2] = neg_inf();
                                if (!(bits & (2u << (8 * (n % 4))))) s[m][n][1] = s[m][n][3] = neg_inf();
                            }
                        }
                    }
                }
                state[m].update(s[m], acc[m], exponent_scale);
            }
            multiply_pv(acc, s, shared_base, v_lane_offset + step_offset);
        }
    }
    ptx::cp_async_wait<0>();
    __syncthreads();   // every warp is done with the Q tile (and the K/V tiles) before O is staged there

    // ---- Epilogue: normalise, stage O through the Q tile (swizzled), 16-byte stores, LSE ----
    const QueryBlock rows(ptx::block_index_x());   // recomputed: nothing of it stays live through the loop
    float* lse_block = lse + (head_offset(heads, 1) + rows.first);
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int mr = 0; mr < 2 * M_TILES; ++mr) {
        const int m = mr >> 1, r = mr & 1;
        float total = state[m].sum[r];
        total += __shfl_xor_sync(0xffffffffu, total, 1);
        total += __shfl_xor_sync(0xffffffffu, total, 2);
        const int row = warp * ROWS_PER_WARP + 16 * m + g + 8 * r;
        // A row attends something when its sum is positive, or NaN: NaN or ±inf in its q, or in the k or v
        // of a key it attends, makes it NaN, and that NaN must reach O and LSE (as in PyTorch), not a 0.
        const bool attended = rows.is_real(row, row_text_shared) && !(total <= 0.0f);
        const float inverse = attended ? 1.0f / total : 0.0f;
        bool overflowed = false;   // a non-finite output element: the unnormalised P·V sum overflowed
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) {
            const float x = acc[m][d][2 * r] * inverse, y = acc[m][d][2 * r + 1] * inverse;
            overflowed = overflowed || !(x - x == 0.0f) || !(y - y == 0.0f);
            const uint32_t packed = attended ? ptx::pack2(x, y) : 0u;
            // Element (row, 8d + 2c): unit d of the row, byte 4c inside the unit.
            *reinterpret_cast<uint32_t*>(shared + swizzled(row, d) + 4 * c) = packed;
        }
        // Such a row gets LSE = NaN, which the exact-rows pass after this kernel looks for (docs/SEMANTICS.md).
        overflowed = __shfl_xor_sync(0xffffffffu, overflowed, 1) || overflowed;
        overflowed = __shfl_xor_sync(0xffffffffu, overflowed, 2) || overflowed;
        if (c == 0 && row < rows.rows) {
            lse_block[row] = !attended ? neg_inf()
                                    : overflowed ? __int_as_float(0x7fc00000)
                                                 : (state[m].base[r] + ptx::log2_approx(total)) * LN2;
        }
    }
    __syncthreads();
    uint16_t* o_block = o + (head_offset(heads, HEAD_DIM) + static_cast<size_t>(rows.first) * HEAD_DIM);
#pragma unroll
    for (int pass = 0; pass < BLOCK_M * ROW_UNITS / THREADS; ++pass) {
        const int index = pass * THREADS + thread;
        const int row = index / ROW_UNITS, unit = index % ROW_UNITS;
        if (row < rows.rows) {
            const uint4 value = *reinterpret_cast<const uint4*>(shared + swizzled(row, unit));
            *reinterpret_cast<uint4*>(o_block + row * HEAD_DIM + unit * 8) = value;
        }
    }
}
