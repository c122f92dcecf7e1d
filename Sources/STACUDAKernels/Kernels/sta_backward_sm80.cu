// Sliding Tile Attention backward pass for NVIDIA sm_80 and newer (mma.sync tensor cores), compiled at run
// time by NVRTC with the headers sta_common.cuh and sta_sm80.cuh.
//
// Semantics (spec §2-3). Q, K, V, O, dO are [B, H, S, D] contiguous 16-bit tensors, S = NUM_TILES·TILE_VOL +
// TEXT_COUNT (video tokens in tile order, holes included, then text); LSE is [B, H, S] float32, natural log,
// as the forward wrote it. With P = exp(scale·QKᵀ − L) over the attended pairs and Δ_i = Σ_d dO_id·O_id:
//     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
// dQ, dK, dV are [B, H, S, D] in the input's 16-bit type (accumulated in fp32, rounded once when written),
// every row written. Rows that attend nothing (holes, padding text, rows whose LSE is -inf) get dQ = 0; keys
// nothing attends (holes, padding text) get dK = dV = 0. Rows of q, k, v, o, dO at holes and padding text
// are never read. Text validity is per batch row and a run-time value, as in the forward: text_valid[b]
// (a device array of `batch` ints) or, when text_valid is null, default_text_valid, clamped into
// 0 ... TEXT_COUNT.
//
// Three kernels, launched in this order on one stream:
//   sta_backward_prepare_sm80  per row: LSE2 = L·log2(e) and Δ; +inf and 0 for rows that attend nothing, so
//                              that the other kernels need no row mask (P = exp2(s − inf) = 0, dS = 0).
//                              LSE2 and Δ live in the caller's workspace (two float arrays of B·H·S).
//                              Block = 256 threads, PREP_ROWS_PER_BLOCK rows per block, grid = ⌈B·H·S / that⌉.
//   sta_backward_dkdv_sm80     one block per (block of DKV_BLOCK_KEYS keys inside one key tile or the text,
//                              head, batch); it streams the query chunks of every query tile that attends its
//                              key tile (the inverse of the plan's lists: query_tile_start / query_tiles, CSR
//                              over window · NUM_TILES + key tile), then the valid text queries; text key
//                              blocks stream every tile and the text. Each warp owns 16 key rows and works on
//                              the transposed problem: Sᵀ = K Qᵀ, dPᵀ = V dOᵀ, dV += Pᵀ dO, dK += dSᵀ Q, all in
//                              registers; written once. Grid = (TEXT_K_BLOCKS + VIDEO_K_BLOCKS, heads, batch),
//                              text blocks first (they do the most work).
//   sta_backward_dq_sm80       one block per query block of DQ_BLOCK_M rows, exactly the forward's grid; it
//                              streams the forward's key chunks: S = Q Kᵀ, dP = dO Vᵀ, dQ += dS K.
// Block = STA_THREADS for all three. No atomics: every output row has one owner.
//
// Compile-time constants: the problem's (sta_common.cuh) and the kernel shapes, which the Swift launcher
// (STABackwardKernel.Shape) chooses and nothing here defaults: STA_THREADS (16 rows per warp in both
// main kernels), STA_DKV_BLOCK_KEYS and STA_DKV_CHUNK (key rows per dK/dV block, query rows per chunk of
// its loop), STA_DQ_BLOCK_M and STA_DQ_CHUNK (query rows per dQ block, keys per chunk), STA_DKV_SHARED_BYTES
// and STA_DQ_SHARED_BYTES (the dynamic shared memory their launches provide).

#include "sta_common.cuh"
#include "sta_sm80.cuh"

#if !defined(STA_DKV_BLOCK_KEYS) || !defined(STA_DKV_CHUNK) || !defined(STA_DQ_BLOCK_M) || !defined(STA_DQ_CHUNK) \
    || !defined(STA_DKV_SHARED_BYTES) || !defined(STA_DQ_SHARED_BYTES)
#error "define STA_DKV_BLOCK_KEYS, STA_DKV_CHUNK, STA_DQ_BLOCK_M, STA_DQ_CHUNK, STA_DKV_SHARED_BYTES and STA_DQ_SHARED_BYTES (the Swift launcher chooses them)"
#endif

namespace sta {

// ---------------------------------------------------------------------------------------------------------
// Kernel shapes
// ---------------------------------------------------------------------------------------------------------

// Prepare: ROW_UNITS threads per row, 8 values each.
constexpr int PREP_ROWS_PER_BLOCK = THREADS / ROW_UNITS;

// dK, dV: 16 key rows per warp; query chunks of DKV_CHUNK rows, double-buffered (Q and dO).
constexpr int DKV_BLOCK_KEYS = STA_DKV_BLOCK_KEYS;
constexpr int DKV_CHUNK = STA_DKV_CHUNK;
static_assert(DKV_BLOCK_KEYS == 16 * WARPS, "STA_DKV_BLOCK_KEYS must be 16 rows per warp");
static_assert(DKV_CHUNK == 32 || DKV_CHUNK == 64, "STA_DKV_CHUNK must be 32 or 64");
constexpr int KBLOCKS_PER_TILE = (TILE_VOL + DKV_BLOCK_KEYS - 1) / DKV_BLOCK_KEYS;
constexpr int VIDEO_K_BLOCKS = NUM_TILES * KBLOCKS_PER_TILE;
constexpr int TEXT_K_BLOCKS = (TEXT_COUNT + DKV_BLOCK_KEYS - 1) / DKV_BLOCK_KEYS;
constexpr int DKV_KEY_TILE_BYTES = DKV_BLOCK_KEYS * ROW_BYTES;
constexpr int DKV_CHUNK_BYTES = DKV_CHUNK * ROW_BYTES;
constexpr int DKV_SHARED_BYTES = 2 * DKV_KEY_TILE_BYTES + 4 * DKV_CHUNK_BYTES;   // K | V | Q[2] | dO[2]

// dQ: the forward's shape. 16 query rows per warp, key chunks of DQ_CHUNK keys, double-buffered (K and V).
constexpr int DQ_BLOCK_M = STA_DQ_BLOCK_M;
constexpr int DQ_CHUNK = STA_DQ_CHUNK;
static_assert(DQ_BLOCK_M == 16 * WARPS, "STA_DQ_BLOCK_M must be 16 rows per warp");
static_assert(DQ_CHUNK % 16 == 0 && DQ_CHUNK <= THREADS, "STA_DQ_CHUNK must be a multiple of 16, at most STA_THREADS");
constexpr int QBLOCKS_PER_TILE = (TILE_VOL + DQ_BLOCK_M - 1) / DQ_BLOCK_M;
constexpr int VIDEO_Q_BLOCKS = NUM_TILES * QBLOCKS_PER_TILE;
constexpr int TEXT_Q_BLOCKS = (TEXT_COUNT + DQ_BLOCK_M - 1) / DQ_BLOCK_M;
constexpr int DQ_QUERY_TILE_BYTES = DQ_BLOCK_M * ROW_BYTES;
constexpr int DQ_CHUNK_BYTES = DQ_CHUNK * ROW_BYTES;
constexpr int DQ_SHARED_BYTES = 2 * DQ_QUERY_TILE_BYTES + 4 * DQ_CHUNK_BYTES;   // Q | dO | K[2] | V[2]

static_assert(DKV_CHUNK_BYTES % 1024 == 0 && DKV_KEY_TILE_BYTES % 1024 == 0 && DQ_CHUNK_BYTES % 1024 == 0
                  && DQ_QUERY_TILE_BYTES % 1024 == 0,
              "tile offsets keep bits 0-9 free");
static_assert(DKV_SHARED_BYTES <= STA_DKV_SHARED_BYTES && DQ_SHARED_BYTES <= STA_DQ_SHARED_BYTES,
              "the tiles fit the dynamic shared memory the launches provide");

namespace ptx {
// A 16-bit storage value as float.
__device__ __forceinline__ float widen(uint16_t bits) {
#if defined(STA_BF16)
    return __uint_as_float(static_cast<uint32_t>(bits) << 16);
#else
    float y;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(y) : "h"(bits));
    return y;
#endif
}
}  // namespace ptx

// Whether sequence position `position` (0 ..< S) is a real token: a video position that is no hole, or one
// of the `text_valid` valid text positions.
__device__ __forceinline__ bool is_real(int position, int text_valid) {
    if (position < VIDEO_TOKENS) return !is_hole(position / TILE_VOL, position % TILE_VOL);
    return position - VIDEO_TOKENS < text_valid;
}

// One chunk of rows: `length` consecutive sequence positions from `start` (length ≤ CHUNK), inside one tile
// (`tile` ≥ 0) or inside the valid text (`tile` = -1).
struct Chunk {
    int start;
    int length;
    int tile;
};

// The index-th chunk of CHUNK rows over `tile_count` tiles (tiles[i], or tile i when `tiles` is null),
// ⌈TILE_VOL / CHUNK⌉ chunks per tile, then ⌈text_valid / CHUNK⌉ chunks of valid text.
template <int CHUNK>
__device__ __forceinline__ Chunk chunk_of(int index, int tile_count, const int* tiles, int text_valid) {
    constexpr int PER_TILE = (TILE_VOL + CHUNK - 1) / CHUNK;
    Chunk chunk;
    if (index < tile_count * PER_TILE) {
        const int tile_slot = index / PER_TILE;
        const int in_tile = (index - tile_slot * PER_TILE) * CHUNK;
        chunk.tile = tiles != nullptr ? __ldg(tiles + tile_slot) : tile_slot;
        chunk.start = chunk.tile * TILE_VOL + in_tile;
        chunk.length = min(CHUNK, TILE_VOL - in_tile);
    } else {
        const int in_text = (index - tile_count * PER_TILE) * CHUNK;
        chunk.tile = -1;
        chunk.start = VIDEO_TOKENS + in_text;
        chunk.length = min(CHUNK, text_valid - in_text);
    }
    return chunk;
}

template <int CHUNK>
__device__ __forceinline__ int chunk_count(int tile_count, int text_valid) {
    return tile_count * ((TILE_VOL + CHUNK - 1) / CHUNK) + (text_valid + CHUNK - 1) / CHUNK;
}

// ---------------------------------------------------------------------------------------------------------
// Register tiles
// ---------------------------------------------------------------------------------------------------------
//
// mma.m16n8k16 fragments (g = lane / 4, c = lane % 4): A a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..),
// a3 = (g+8, 2c+8..); B b0 = (k 2c..2c+1, n g), b1 = (k 2c+8.., n g); C d0, d1 = (g, 2c, 2c+1), d2, d3 = (g+8, …).
// Lane offsets (see the forward kernel for the derivation; tile offsets are multiples of 1 KiB so that the
// head-dim step is one XOR of k << 5):
//   A operand rows (row-major, 16 rows from `row0`): lane_offset(row0 + ((l >> 3) & 1)·8 + (l & 7), l >> 4)
//   B operand from rows, non-transposed (B(k = d, n = row) = T[row][d]): lane_offset((l >> 4)·8 + (l & 7), (l >> 3) & 1)
//   B operand from rows, transposed (B(k = row, n = d) = T[row][d]):     lane_offset(((l >> 3) & 1)·8 + (l & 7), l >> 4)

__device__ __forceinline__ uint32_t a_lane_offset(int row0, int lane) {
    return lane_offset(row0 + ((lane >> 3) & 1) * 8 + (lane & 7), lane >> 4);
}
__device__ __forceinline__ uint32_t b_lane_offset(int lane) {
    return lane_offset((lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1);
}
__device__ __forceinline__ uint32_t bt_lane_offset(int lane) {
    return lane_offset(((lane >> 3) & 1) * 8 + (lane & 7), lane >> 4);
}

// s = A·Bᵀ over the head dim for the warp's 16 rows of A and N rows of B: s[n] is the 16×8 block of B rows
// 8n .. 8n+7. A and B are both token-major tiles in shared memory.
template <int N>
__device__ __forceinline__ void multiply_abt(float (&s)[N / 8][4], uint32_t shared_base, uint32_t a_offset,
                                             uint32_t b_offset) {
#pragma unroll
    for (int n = 0; n < N / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int k = 0; k < HEAD_DIM / 16; ++k) {
        uint32_t a[4];
        ptx::ldmatrix_x4(a, shared_base + (a_offset ^ (k << 5)));
        const uint32_t address = shared_base + (b_offset ^ (k << 5));
#pragma unroll
        for (int p = 0; p < N / 16; ++p) {
            uint32_t b[4];
            ptx::ldmatrix_x4(b, address + p * 16 * ROW_BYTES);
            ptx::mma_16816(s[2 * p], a, b[0], b[1]);
            ptx::mma_16816(s[2 * p + 1], a, b[2], b[3]);
        }
    }
}

// acc += P·T for the warp's 16 rows: P (16 × N, fp32 accumulators, rounded to 16 bits here) times the
// token-major tile T (N tokens × HEAD_DIM) read with transposed ldmatrix.
template <int N>
__device__ __forceinline__ void multiply_pt(float (&acc)[HEAD_DIM / 8][4], const float (&p)[N / 8][4],
                                            uint32_t shared_base, uint32_t t_offset) {
#pragma unroll
    for (int j = 0; j < N / 16; ++j) {
        uint32_t a[4];
        a[0] = ptx::pack2(p[2 * j][0], p[2 * j][1]);
        a[1] = ptx::pack2(p[2 * j][2], p[2 * j][3]);
        a[2] = ptx::pack2(p[2 * j + 1][0], p[2 * j + 1][1]);
        a[3] = ptx::pack2(p[2 * j + 1][2], p[2 * j + 1][3]);
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 16; ++d) {
            uint32_t b[4];
            ptx::ldmatrix_x4_trans(b, shared_base + (t_offset ^ (d << 5)) + j * 16 * ROW_BYTES);
            ptx::mma_16816(acc[2 * d], a, b[0], b[1]);
            ptx::mma_16816(acc[2 * d + 1], a, b[2], b[3]);
        }
    }
}

// Writes the warp's accumulator rows `row` (g and g+8) of a [*, HEAD_DIM] 16-bit matrix, times `factor` and
// rounded to nearest even, or zeros when `keep(row)` is false; rows ≥ `rows` are not written.
template <typename Keep>
__device__ __forceinline__ void store_rows(uint16_t* matrix, int first, int rows, int warp_row, int lane,
                                           const float (&acc)[HEAD_DIM / 8][4], float factor, Keep keep) {
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = warp_row + g + 8 * r;
        if (row >= rows) continue;
        const bool kept = keep(row);
        uint16_t* out = matrix + static_cast<size_t>(first + row) * HEAD_DIM + 2 * c;
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) {
            const uint32_t value = kept ? ptx::pack2(acc[d][2 * r] * factor, acc[d][2 * r + 1] * factor) : 0u;
            *reinterpret_cast<uint32_t*>(out + 8 * d) = value;
        }
    }
}

// Zeros rows [first, first + rows) of a [*, HEAD_DIM] 16-bit matrix with the whole block.
__device__ __forceinline__ void zero_rows(uint16_t* matrix, int first, int rows) {
    uint4* out = reinterpret_cast<uint4*>(matrix + static_cast<size_t>(first) * HEAD_DIM);
    for (int index = threadIdx.x; index < rows * ROW_UNITS; index += THREADS) out[index] = make_uint4(0, 0, 0, 0);
}

}  // namespace sta

// ---------------------------------------------------------------------------------------------------------
// Kernel 0: LSE in log2 units and Δ per row
// ---------------------------------------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(sta::THREADS)
sta_backward_prepare_sm80(const uint16_t* o, const uint16_t* dout, const float* lse, float* lse2, float* delta,
                          long long rows, int heads, const int* text_valid, int default_text_valid) {
    using namespace sta;
    const int lane_in_row = threadIdx.x % ROW_UNITS;
    const long long row = static_cast<long long>(blockIdx.x) * PREP_ROWS_PER_BLOCK + threadIdx.x / ROW_UNITS;
    const bool inside = row < rows;
    const int position = inside ? static_cast<int>(row % SEQ) : 0;
    const int batch = inside ? static_cast<int>(row / (static_cast<long long>(heads) * SEQ)) : 0;
    const int row_text = position >= VIDEO_TOKENS ? row_text_valid(text_valid, default_text_valid, batch) : 0;
    const float l = inside ? lse[row] : neg_inf();
    const bool attends = inside && is_real(position, row_text) && l != neg_inf() && l == l;
    float sum = 0.0f;
    if (attends) {
        const uint4 a = *reinterpret_cast<const uint4*>(o + row * HEAD_DIM + lane_in_row * 8);
        const uint4 b = *reinterpret_cast<const uint4*>(dout + row * HEAD_DIM + lane_in_row * 8);
        const uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            sum += ptx::widen(static_cast<uint16_t>(av[i] & 0xffffu)) * ptx::widen(static_cast<uint16_t>(bv[i] & 0xffffu));
            sum += ptx::widen(static_cast<uint16_t>(av[i] >> 16)) * ptx::widen(static_cast<uint16_t>(bv[i] >> 16));
        }
    }
#pragma unroll
    for (int step = 1; step < ROW_UNITS; step <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, step);
    if (inside && lane_in_row == 0) {
        lse2[row] = attends ? l * LOG2E : pos_inf();
        delta[row] = attends ? sum : 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Kernel 1: dK and dV, one block per key block
// ---------------------------------------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(sta::THREADS, 1)
sta_backward_dkdv_sm80(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* dout,
                       const float* lse2, const float* delta, uint16_t* dk, uint16_t* dv, const int* window_of_head,
                       const int* query_tile_start, const int* query_tiles, int heads, float scale,
                       const int* text_valid, int default_text_valid) {
    using namespace sta;
    extern __shared__ __align__(128) unsigned char shared[];
    __shared__ float chunk_lse2[2][DKV_CHUNK];
    __shared__ float chunk_delta[2][DKV_CHUNK];

    const int thread = threadIdx.x, lane = thread & 31, warp = thread >> 5;
    const int head = blockIdx.y, batch = blockIdx.z;
    const size_t head_offset = (static_cast<size_t>(batch) * heads + head) * static_cast<size_t>(SEQ);
    const uint16_t* q_head = q + head_offset * HEAD_DIM;
    const uint16_t* k_head = k + head_offset * HEAD_DIM;
    const uint16_t* v_head = v + head_offset * HEAD_DIM;
    const uint16_t* do_head = dout + head_offset * HEAD_DIM;
    const float* lse2_head = lse2 + head_offset;
    const float* delta_head = delta + head_offset;
    uint16_t* dk_head = dk + head_offset * HEAD_DIM;
    uint16_t* dv_head = dv + head_offset * HEAD_DIM;
    const int row_text = row_text_valid(text_valid, default_text_valid, batch);   // valid text rows of this row

    // ---- Which keys, which queries ----
    int k_first, k_rows, k_tile = -1, k_tile_offset = 0, query_tile_count;
    const int* query_tile_list = nullptr;   // null: every tile
    if (static_cast<int>(blockIdx.x) < TEXT_K_BLOCKS) {
        k_first = VIDEO_TOKENS + blockIdx.x * DKV_BLOCK_KEYS;
        k_rows = min(DKV_BLOCK_KEYS, SEQ - k_first);
        query_tile_count = NUM_TILES;
    } else {
        const int video_block = blockIdx.x - TEXT_K_BLOCKS;
        k_tile = video_block / KBLOCKS_PER_TILE;
        k_tile_offset = (video_block - k_tile * KBLOCKS_PER_TILE) * DKV_BLOCK_KEYS;
        k_first = k_tile * TILE_VOL + k_tile_offset;
        k_rows = min(DKV_BLOCK_KEYS, TILE_VOL - k_tile_offset);
        const int row = __ldg(window_of_head + head) * NUM_TILES + k_tile;
        const int begin = __ldg(query_tile_start + row);
        query_tile_count = __ldg(query_tile_start + row + 1) - begin;
        query_tile_list = query_tiles + begin;
    }
    auto key_is_real = [&](int r) {
        if (r >= k_rows) return false;
        return k_tile >= 0 ? !is_hole(k_tile, k_tile_offset + r) : k_first - VIDEO_TOKENS + r < row_text;
    };
    if (!__syncthreads_or(thread < DKV_BLOCK_KEYS && key_is_real(thread))) {
        zero_rows(dk_head, k_first, k_rows);
        zero_rows(dv_head, k_first, k_rows);
        return;
    }

    const uint32_t base = ptx::shared_address(shared);
    constexpr uint32_t K_TILE = 0, V_TILE = DKV_KEY_TILE_BYTES, Q_CHUNKS = 2 * DKV_KEY_TILE_BYTES,
                       DO_CHUNKS = 2 * DKV_KEY_TILE_BYTES + 2 * DKV_CHUNK_BYTES;
    load_tile_async<DKV_BLOCK_KEYS>(base + K_TILE, k_head, k_first, k_rows, key_is_real);
    load_tile_async<DKV_BLOCK_KEYS>(base + V_TILE, v_head, k_first, k_rows, key_is_real);
    ptx::cp_async_commit();

    const int count = chunk_count<DKV_CHUNK>(query_tile_count, row_text);
    float pending_lse2 = pos_inf(), pending_delta = 0.0f;
    // Issues the loads of query chunk `index` into `buffer`: Q and dO by cp.async (holes and rows past the
    // chunk zero-filled), LSE2 and Δ into registers of the first DKV_CHUNK threads (+inf and 0 past the chunk).
    auto load_chunk = [&](int index, int buffer) {
        const Chunk chunk = chunk_of<DKV_CHUNK>(index, query_tile_count, query_tile_list, row_text);
        const bool holes = chunk.tile >= 0 && tile_may_hold_holes(chunk.tile);
        const int tile_base = chunk.tile * TILE_VOL;
        auto keep = [&](int row) { return !holes || !is_hole(chunk.tile, chunk.start - tile_base + row); };
        load_tile_async<DKV_CHUNK>(base + Q_CHUNKS + buffer * DKV_CHUNK_BYTES, q_head, chunk.start, chunk.length, keep);
        load_tile_async<DKV_CHUNK>(base + DO_CHUNKS + buffer * DKV_CHUNK_BYTES, do_head, chunk.start, chunk.length,
                                   keep);
        if (thread < DKV_CHUNK) {
            const bool inside = thread < chunk.length;
            pending_lse2 = inside ? __ldg(lse2_head + chunk.start + thread) : pos_inf();
            pending_delta = inside ? __ldg(delta_head + chunk.start + thread) : 0.0f;
        }
    };
    if (count > 0) {
        load_chunk(0, 0);
        if (thread < DKV_CHUNK) chunk_lse2[0][thread] = pending_lse2, chunk_delta[0][thread] = pending_delta;
    }
    ptx::cp_async_commit();

    float acc_dk[HEAD_DIM / 8][4], acc_dv[HEAD_DIM / 8][4];
#pragma unroll
    for (int d = 0; d < HEAD_DIM / 8; ++d) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dk[d][e] = acc_dv[d][e] = 0.0f;
    }
    const bool warp_active = warp * 16 < k_rows;
    const uint32_t k_a = K_TILE + a_lane_offset(warp * 16, lane);
    const uint32_t v_a = V_TILE + a_lane_offset(warp * 16, lane);
    const uint32_t q_b = Q_CHUNKS + b_lane_offset(lane), do_b = DO_CHUNKS + b_lane_offset(lane);
    const uint32_t q_bt = Q_CHUNKS + bt_lane_offset(lane), do_bt = DO_CHUNKS + bt_lane_offset(lane);
    const float scale_log2 = scale * LOG2E;
    const int c = lane & 3;

    for (int index = 0; index < count; ++index) {
        const int buffer = index & 1;
        ptx::cp_async_wait<0>();
        // Chunk `index` (and its LSE2, Δ) is visible to all; every warp is done with chunk index − 1.
        __syncthreads();
        const bool more = index + 1 < count;
        if (more) load_chunk(index + 1, buffer ^ 1);
        ptx::cp_async_commit();

        if (warp_active) {
            // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ: rows are this warp's keys, columns the chunk's queries.
            float s[DKV_CHUNK / 8][4], dp[DKV_CHUNK / 8][4];
            multiply_abt<DKV_CHUNK>(s, base, k_a, q_b + buffer * DKV_CHUNK_BYTES);
            multiply_abt<DKV_CHUNK>(dp, base, v_a, do_b + buffer * DKV_CHUNK_BYTES);
#pragma unroll
            for (int n = 0; n < DKV_CHUNK / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int column = 8 * n + 2 * c + (e & 1);
                    const float p = ptx::exp2_approx(s[n][e] * scale_log2 - chunk_lse2[buffer][column]);
                    s[n][e] = p;
                    dp[n][e] = p * (dp[n][e] - chunk_delta[buffer][column]);
                }
            }
            multiply_pt<DKV_CHUNK>(acc_dv, s, base, do_bt + buffer * DKV_CHUNK_BYTES);
            multiply_pt<DKV_CHUNK>(acc_dk, dp, base, q_bt + buffer * DKV_CHUNK_BYTES);
        }
        // The other buffer's LSE2 and Δ were last read in iteration index − 1, before this iteration's barrier.
        if (more && thread < DKV_CHUNK) {
            chunk_lse2[buffer ^ 1][thread] = pending_lse2;
            chunk_delta[buffer ^ 1][thread] = pending_delta;
        }
    }
    ptx::cp_async_wait<0>();

    store_rows(dk_head, k_first, k_rows, warp * 16, lane, acc_dk, scale, key_is_real);
    store_rows(dv_head, k_first, k_rows, warp * 16, lane, acc_dv, 1.0f, key_is_real);
}

// ---------------------------------------------------------------------------------------------------------
// Kernel 2: dQ, one block per query block (the forward's grid)
// ---------------------------------------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(sta::THREADS, 1)
sta_backward_dq_sm80(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* dout,
                     const float* lse2, const float* delta, uint16_t* dq, const int* window_of_head,
                     const int* key_tile_start, const int* key_tiles, int heads, float scale,
                     const int* text_valid, int default_text_valid) {
    using namespace sta;
    extern __shared__ __align__(128) unsigned char shared[];
    __shared__ unsigned char key_valid[2][DQ_CHUNK];

    const int thread = threadIdx.x, lane = thread & 31, warp = thread >> 5;
    const int head = blockIdx.y, batch = blockIdx.z;
    const size_t head_offset = (static_cast<size_t>(batch) * heads + head) * static_cast<size_t>(SEQ);
    const uint16_t* q_head = q + head_offset * HEAD_DIM;
    const uint16_t* k_head = k + head_offset * HEAD_DIM;
    const uint16_t* v_head = v + head_offset * HEAD_DIM;
    const uint16_t* do_head = dout + head_offset * HEAD_DIM;
    uint16_t* dq_head = dq + head_offset * HEAD_DIM;
    const int row_text = row_text_valid(text_valid, default_text_valid, batch);   // valid text rows of this row

    int q_first, q_rows, q_tile = -1, q_tile_offset = 0, key_tile_count;
    const int* key_tile_list = nullptr;
    if (static_cast<int>(blockIdx.x) < TEXT_Q_BLOCKS) {
        q_first = VIDEO_TOKENS + blockIdx.x * DQ_BLOCK_M;
        q_rows = min(DQ_BLOCK_M, SEQ - q_first);
        key_tile_count = NUM_TILES;
    } else {
        const int video_block = blockIdx.x - TEXT_Q_BLOCKS;
        q_tile = video_block / QBLOCKS_PER_TILE;
        q_tile_offset = (video_block - q_tile * QBLOCKS_PER_TILE) * DQ_BLOCK_M;
        q_first = q_tile * TILE_VOL + q_tile_offset;
        q_rows = min(DQ_BLOCK_M, TILE_VOL - q_tile_offset);
        const int row = __ldg(window_of_head + head) * NUM_TILES + q_tile;
        const int begin = __ldg(key_tile_start + row);
        key_tile_count = __ldg(key_tile_start + row + 1) - begin;
        key_tile_list = key_tiles + begin;
    }
    auto query_is_real = [&](int r) {
        if (r >= q_rows) return false;
        return q_tile >= 0 ? !is_hole(q_tile, q_tile_offset + r) : q_first - VIDEO_TOKENS + r < row_text;
    };
    if (!__syncthreads_or(thread < DQ_BLOCK_M && query_is_real(thread))) {
        zero_rows(dq_head, q_first, q_rows);
        return;
    }

    const uint32_t base = ptx::shared_address(shared);
    constexpr uint32_t Q_TILE = 0, DO_TILE = DQ_QUERY_TILE_BYTES, K_CHUNKS = 2 * DQ_QUERY_TILE_BYTES,
                       V_CHUNKS = 2 * DQ_QUERY_TILE_BYTES + 2 * DQ_CHUNK_BYTES;
    load_tile_async<DQ_BLOCK_M>(base + Q_TILE, q_head, q_first, q_rows, query_is_real);
    load_tile_async<DQ_BLOCK_M>(base + DO_TILE, do_head, q_first, q_rows, query_is_real);
    ptx::cp_async_commit();

    const int count = chunk_count<DQ_CHUNK>(key_tile_count, row_text);
    bool next_needs_mask = false;
    auto load_chunk = [&](int index, int buffer, bool& needs_mask) {
        const Chunk chunk = chunk_of<DQ_CHUNK>(index, key_tile_count, key_tile_list, row_text);
        const bool holes = chunk.tile >= 0 && tile_may_hold_holes(chunk.tile);
        const int tile_base = chunk.tile * TILE_VOL;
        auto keep = [&](int row) { return !holes || !is_hole(chunk.tile, chunk.start - tile_base + row); };
        load_tile_async<DQ_CHUNK>(base + K_CHUNKS + buffer * DQ_CHUNK_BYTES, k_head, chunk.start, chunk.length, keep);
        load_tile_async<DQ_CHUNK>(base + V_CHUNKS + buffer * DQ_CHUNK_BYTES, v_head, chunk.start, chunk.length, keep);
        needs_mask = chunk.length < DQ_CHUNK || holes;
        if (needs_mask && thread < DQ_CHUNK) key_valid[buffer][thread] = thread < chunk.length && keep(thread);
    };
    if (count > 0) load_chunk(0, 0, next_needs_mask);
    ptx::cp_async_commit();

    // This thread's rows g and g+8: LSE2 (+inf for rows that attend nothing) and Δ.
    const int g = lane >> 2, c = lane & 3;
    float row_lse2[2], row_delta[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = warp * 16 + g + 8 * r;
        const bool inside = row < q_rows;
        row_lse2[r] = inside ? __ldg(lse2 + head_offset + q_first + row) : pos_inf();
        row_delta[r] = inside ? __ldg(delta + head_offset + q_first + row) : 0.0f;
    }

    float acc[HEAD_DIM / 8][4];
#pragma unroll
    for (int d = 0; d < HEAD_DIM / 8; ++d) acc[d][0] = acc[d][1] = acc[d][2] = acc[d][3] = 0.0f;
    const bool warp_active = warp * 16 < q_rows;
    const uint32_t q_a = Q_TILE + a_lane_offset(warp * 16, lane), do_a = DO_TILE + a_lane_offset(warp * 16, lane);
    const uint32_t k_b = K_CHUNKS + b_lane_offset(lane), v_b = V_CHUNKS + b_lane_offset(lane);
    const uint32_t k_bt = K_CHUNKS + bt_lane_offset(lane);
    const float scale_log2 = scale * LOG2E;

    for (int index = 0; index < count; ++index) {
        const int buffer = index & 1;
        ptx::cp_async_wait<0>();
        __syncthreads();
        const bool needs_mask = next_needs_mask;
        if (index + 1 < count) load_chunk(index + 1, buffer ^ 1, next_needs_mask);
        ptx::cp_async_commit();
        if (!warp_active) continue;

        float s[DQ_CHUNK / 8][4], dp[DQ_CHUNK / 8][4];
        multiply_abt<DQ_CHUNK>(s, base, q_a, k_b + buffer * DQ_CHUNK_BYTES);
        multiply_abt<DQ_CHUNK>(dp, base, do_a, v_b + buffer * DQ_CHUNK_BYTES);
#pragma unroll
        for (int n = 0; n < DQ_CHUNK / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = e >> 1;
                float x = s[n][e] * scale_log2;
                if (needs_mask && !key_valid[buffer][8 * n + 2 * c + (e & 1)]) x = neg_inf();
                const float p = ptx::exp2_approx(x - row_lse2[r]);
                s[n][e] = p * (dp[n][e] - row_delta[r]);
            }
        }
        multiply_pt<DQ_CHUNK>(acc, s, base, k_bt + buffer * DQ_CHUNK_BYTES);
    }
    ptx::cp_async_wait<0>();

    store_rows(dq_head, q_first, q_rows, warp * 16, lane, acc, scale, query_is_real);
}
