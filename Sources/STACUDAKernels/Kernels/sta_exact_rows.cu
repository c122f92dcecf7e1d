// Sliding Tile Attention: the rows the fast kernels cannot represent in fp32, found after them and redone in
// float64. Compiled at run time by NVRTC with sta_common.cuh, for the same
// problem constants as the fast kernels; any architecture from sm_80 (plain CUDA, no tensor cores).
//
// Semantics (docs/SEMANTICS.md, "NaN, infinities and scores past the fp32 range"). Tensors as in the fast
// kernels: Q, K, V, O (and dQ, dK, dV) [B, H, S, D] contiguous 16-bit, LSE [B, H, S] float32 natural log. A
// video query of tile t, head h attends the real keys of key_tiles[key_tile_start[w·NUM_TILES + t] ..
// key_tile_start[w·NUM_TILES + t + 1]) (w = window_of_head[h]) plus the valid text keys of its batch row; a
// valid text query attends every real video key and every valid text key. Valid text lengths: text_valid[b]
// or default_text_valid, clamped (row_text_valid).
//
//   sta_exact_rows_forward   after a fast forward. A real row (not a hole, not padding text: it attends at
//                            least itself) is redone when its LSE is NaN or ±inf or an element of its O is
//                            not finite — what an fp32 overflow of |q·k|·scale (to +inf, or every score to
//                            −inf) or of the unnormalised P·V sum leaves. It is recomputed
//                            in double exactly as the float64 reference computes it (maximum first, then
//                            Σ exp(s − max) and Σ exp(s − max)·v): O rounded to the storage type, LSE rounded
//                            to float (so ±inf where it passes the fp32 range). NaN or ±inf in the row's q,
//                            NaN in an attended k, ±inf in an attended v, or ±inf in an attended k whose score
//                            is not exactly −inf make the row NaN in O and LSE, as the reference does — the
//                            NaN contract of the fast kernels is unchanged. Other rows are read, not written.
//   sta_exact_rows_backward_clear, _queries, _keys, in this order after a fast backward. A row that attends
//                            something and whose LSE is NaN, ±inf or of magnitude ≥ EXACT_LSE_LIMIT — where
//                            fp32 cannot carry L, so P = exp(s − L) cannot be recomputed from it — gets its L
//                            recomputed in double from its scores (kept in exact_lse), its dQ row redone in
//                            double, and a mark on every key it attends; each marked key gets its dK and dV
//                            rows redone in double over every query that attends it (L of the redone rows from
//                            exact_lse, the stored LSE for the others). The results are the reference's; NaN
//                            inputs give NaN in every gradient row they reach. Unmarked rows are not written.
//
// Launch: block = STA_EXACT_THREADS threads (one warp per row; _clear one thread per row), grid = ⌈B·H·S /
// rows per block⌉, no dynamic shared memory. Cost when no row is flagged: one read of LSE and (forward) of O,
// about B·H·S·(4 + 2·D) bytes, or (backward) of LSE and the marks plus clearing them, B·H·S·6 bytes. A
// flagged forward row costs 2 passes over its keys (4·D double flops per key each) in one warp; a flagged
// backward row 3 passes over its keys, and a marked key one pass over its queries (about 8·D per query).

#include "sta_common.cuh"

#if !defined(STA_EXACT_THREADS)
#error "define STA_EXACT_THREADS (threads per block of the exact-rows kernels; the Swift launcher chooses it)"
#endif

namespace sta {
namespace exact {

constexpr int THREADS = STA_EXACT_THREADS;
constexpr int WARPS = THREADS / 32;
constexpr int PER_LANE = HEAD_DIM / 32;   // head-dim columns per lane: lane + 32·i
static_assert(THREADS % 32 == 0 && THREADS <= 1024, "STA_EXACT_THREADS must be a whole number of warps, at most 1024");

// |L| from which the backward marks a row: fp32 holds L only to 2^-9 there, so exp(s − L) is off by more than
// the bf16 resolution of the gradients.
constexpr float EXACT_LSE_LIMIT = 32768.0f;

constexpr unsigned FULL_MASK = 0xffffffffu;

__device__ __forceinline__ double to_double(uint16_t bits) {
#if defined(STA_BF16)
    return static_cast<double>(__uint_as_float(static_cast<uint32_t>(bits) << 16));
#else
    float value;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(value) : "h"(bits));
    return static_cast<double>(value);
#endif
}

// Float → storage type, round to nearest even (NaN stays NaN, overflow gives ±inf).
__device__ __forceinline__ uint16_t to_storage(float value) {
    uint16_t bits;
#if defined(STA_BF16)
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
#else
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
#endif
    return bits;
}

// A quiet NaN in the storage type.
__device__ __forceinline__ uint16_t storage_nan() {
#if defined(STA_BF16)
    return 0x7fc0;
#else
    return 0x7e00;
#endif
}

__device__ __forceinline__ bool finite_storage(uint16_t bits) {
#if defined(STA_BF16)
    return (bits & 0x7f80) != 0x7f80;
#else
    return (bits & 0x7c00) != 0x7c00;
#endif
}

__device__ __forceinline__ bool finite_float(float value) {
    return (__float_as_uint(value) & 0x7f800000u) != 0x7f800000u;
}

__device__ __forceinline__ bool is_nan_double(double value) { return value != value; }

__device__ __forceinline__ double neg_inf_double() { return __longlong_as_double(0xfff0000000000000ll); }
__device__ __forceinline__ double pos_inf_double() { return __longlong_as_double(0x7ff0000000000000ll); }
__device__ __forceinline__ double nan_double() { return __longlong_as_double(0x7ff8000000000000ll); }

__device__ __forceinline__ double warp_max(double value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmax(value, __shfl_xor_sync(FULL_MASK, value, offset));
    return value;
}

__device__ __forceinline__ double warp_sum(double value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(FULL_MASK, value, offset);
    return value;
}

// Σ_c a[c]·b[c] over the head dimension by one lane, in column order, one fused multiply-add per column:
// every pass computes a given product bit for bit the same way (fma is symmetric in its factors, so
// dot_row(q, k) with q in shared memory equals dot_row(k, q) with k there). That matters: scores of 1e41
// rounded two ways differ by about 1e25, so exp(s − L) is only 1 for the key that made L when s and L come
// from the same rounding — and dP − Δ only 0 for a row whose output is one value row when both sums are
// taken alike. `a` is a double row in shared memory, `b` a storage row.
__device__ __forceinline__ double dot_row(const double* a, const uint16_t* b) {
    double dot = 0.0;
    for (int c = 0; c < HEAD_DIM; ++c) dot = fma(a[c], to_double(b[c]), dot);
    return dot;
}

// dot_row for two storage rows.
__device__ __forceinline__ double dot_row(const uint16_t* a, const uint16_t* b) {
    double dot = 0.0;
    for (int c = 0; c < HEAD_DIM; ++c) dot = fma(to_double(a[c]), to_double(b[c]), dot);
    return dot;
}

// A score, scale · dot_row(a, b), rounded once as a product (never fused into a later subtraction: that
// would subtract L from the unrounded product, off by the product's rounding error).
__device__ __forceinline__ double score_row(double scale, const double* a, const uint16_t* b) {
    return __dmul_rn(scale, dot_row(a, b));
}

// One row of [B·H·S]: where it sits, and whether it is a real query (not a hole, not padding text).
struct Row {
    long long index;
    int position, head, batch;
    int text;        // valid text positions of its batch row
    bool real;

    __device__ __forceinline__ Row(long long row, int heads, const int* text_valid, int default_text_valid) {
        index = row;
        position = static_cast<int>(row % SEQ);
        const long long batch_head = row / SEQ;
        head = static_cast<int>(batch_head % heads);
        batch = static_cast<int>(batch_head / heads);
        text = row_text_valid(text_valid, default_text_valid, batch);
        real = position < VIDEO_TOKENS ? !is_hole(position / TILE_VOL, position % TILE_VOL)
                                       : position - VIDEO_TOKENS < text;
    }

    // First row of this row's (batch, head) in [B·H·S].
    __device__ __forceinline__ long long head_base() const { return index - position; }
};

// Calls body(key, valid) for the keys `row` attends, 32 positions at a time, one per lane: every key tile of
// its list (or every tile, for a text query) then the valid text. `valid` is false for lanes past a tile or
// the text and for holes. Every lane of the warp calls body the same number of times (warp-uniform loop).
template <typename Body>
__device__ __forceinline__ void for_each_key(const Row& row, const int* window_of_head, const int* key_tile_start,
                                             const int* key_tiles, int lane, Body&& body) {
    int tile_count = NUM_TILES;
    const int* tiles = nullptr;   // null: every tile, in order
    if (row.position < VIDEO_TOKENS) {
        const int list = __ldg(window_of_head + row.head) * NUM_TILES + row.position / TILE_VOL;
        const int begin = __ldg(key_tile_start + list);
        tile_count = __ldg(key_tile_start + list + 1) - begin;
        tiles = key_tiles + begin;
    }
    for (int slot = 0; slot < tile_count; ++slot) {
        const int tile = tiles != nullptr ? __ldg(tiles + slot) : slot;
        const bool holes = tile_may_hold_holes(tile);
        for (int base = 0; base < TILE_VOL; base += 32) {
            const int offset = base + lane;
            const bool valid = offset < TILE_VOL && !(holes && is_hole(tile, offset));
            body(tile * TILE_VOL + offset, valid);
        }
    }
    for (int base = 0; base < row.text; base += 32) {
        const int offset = base + lane;
        body(VIDEO_TOKENS + offset, offset < row.text);
    }
}

}  // namespace exact
}  // namespace sta

// ---------------------------------------------------------------------------------------------------------
// Forward: redo the rows an fp32 overflow left non-finite
// ---------------------------------------------------------------------------------------------------------

namespace sta {
namespace exact {

// Recomputes row `row_index` of the forward in float64 (one warp; `query` is the warp's shared row) and
// writes its O and LSE, unless it is not a real query. NaN or ±inf in what the row reads makes it NaN.
__device__ __noinline__ void redo_forward_row(const uint16_t* q, const uint16_t* k, const uint16_t* v,
                                              uint16_t* o, float* lse, const int* window_of_head,
                                              const int* key_tile_start, const int* key_tiles, int heads,
                                              float scale, const int* text_valid, int default_text_valid,
                                              long long row_index, int lane, double* query) {
    uint16_t* o_row = o + row_index * HEAD_DIM;
    const Row row(row_index, heads, text_valid, default_text_valid);
    if (!row.real) return;
    const long long head_base = row.head_base();

    // The query row in double, in this warp's shared row; NaN or ±inf in it poisons the row.
    __syncwarp();   // the previous row's reads of `query` are done
    bool poisoned = false;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        const double value = to_double(q[row_index * HEAD_DIM + lane + 32 * i]);
        query[lane + 32 * i] = value;
        poisoned = poisoned || !(value - value == 0.0);   // NaN or ±inf
    }
    __syncwarp();
    const double scale_d = static_cast<double>(scale);
    // score(key): scale · q·k in double, by one lane over the whole head dimension.
    auto score = [&](int key) { return score_row(scale_d, query, k + (head_base + key) * HEAD_DIM); };

    // Pass 1: the maximum score (a NaN score poisons the row).
    double maximum = neg_inf_double();
    if (!__any_sync(FULL_MASK, poisoned)) {
        for_each_key(row, window_of_head, key_tile_start, key_tiles, lane, [&](int key, bool valid) {
            if (!valid) return;
            const double s = score(key);
            if (is_nan_double(s)) poisoned = true;
            else maximum = fmax(maximum, s);
        });
    }
    poisoned = __any_sync(FULL_MASK, poisoned);
    maximum = warp_max(maximum);
    // All scores −inf, or one +inf: softmax is undefined (inf − inf), as in the reference.
    poisoned = poisoned || !(maximum - maximum == 0.0);

    // Pass 2: Σ exp(s − max) (per lane, then the warp) and Σ exp(s − max)·v (lanes over head-dim columns).
    double sum = 0.0;
    double accumulator[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) accumulator[i] = 0.0;
    if (!poisoned) {
        for_each_key(row, window_of_head, key_tile_start, key_tiles, lane, [&](int key, bool valid) {
            const double weight = valid ? exp(score(key) - maximum) : 0.0;
            sum += weight;
            for (int j = 0; j < 32; ++j) {
                const int key_valid = __shfl_sync(FULL_MASK, static_cast<int>(valid), j);
                const double w = __shfl_sync(FULL_MASK, weight, j);
                const int key_j = __shfl_sync(FULL_MASK, key, j);
                if (!key_valid) continue;   // warp-uniform
                const uint16_t* v_row = v + (head_base + key_j) * HEAD_DIM;
#pragma unroll
                for (int i = 0; i < PER_LANE; ++i) accumulator[i] += w * to_double(v_row[lane + 32 * i]);
            }
        });
        sum = warp_sum(sum);
    }

    float values[PER_LANE];
    bool bad = poisoned;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        values[i] = poisoned ? 0.0f : __double2float_rn(accumulator[i] / sum);
        bad = bad || !finite_float(values[i]);
    }
    bad = __any_sync(FULL_MASK, bad);
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) o_row[lane + 32 * i] = bad ? storage_nan() : to_storage(values[i]);
    if (lane == 0) {
        // Rounded to float: ±inf where the log-sum-exp passes the fp32 range.
        lse[row_index] = bad ? __uint_as_float(0x7fc00000u) : __double2float_rn(maximum + log(sum));
    }
}

}  // namespace exact
}  // namespace sta

extern "C" __global__ void
sta_exact_rows_forward(const uint16_t* q, const uint16_t* k, const uint16_t* v, uint16_t* o, float* lse,
                       const int* window_of_head, const int* key_tile_start, const int* key_tiles, int heads,
                       long long row_count, float scale, const int* text_valid, int default_text_valid) {
    using namespace sta;
    using namespace sta::exact;
    __shared__ double query_rows[WARPS][HEAD_DIM];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // Each warp scans 32 rows, one per lane, by their LSE alone; then redoes its flagged rows one by one.
    // Flagged: LSE not finite, or of magnitude at least EXACT_LSE_LIMIT (scores that large hold fp32's
    // 2⁻²⁴ relative precision only to more than 2⁻⁹ absolute, so exp(s − max) is off; the backward redoes
    // the same rows). The fast kernels write NaN as the LSE of a row whose output has a non-finite element
    // (the unnormalised P·V sum overflowed), so O is not read here. LSE = −inf is right for the rows that
    // attend nothing (holes, padding text); every real row attends at least itself, so for a real row it
    // means that every score overflowed to −inf in fp32 (and O was written as 0).
    const long long first_row = (static_cast<long long>(blockIdx.x) * WARPS + warp) * 32;
    const long long my_row = first_row + lane;
    const float stored = my_row < row_count ? lse[my_row] : 0.0f;
    const bool flagged = !(finite_float(stored) && fabsf(stored) < EXACT_LSE_LIMIT);
    unsigned pending = __ballot_sync(FULL_MASK, flagged);
    while (pending != 0) {   // warp-uniform
        const long long row_index = first_row + (__ffs(pending) - 1);
        pending &= pending - 1;
        redo_forward_row(q, k, v, o, lse, window_of_head, key_tile_start, key_tiles, heads, scale, text_valid,
                         default_text_valid, row_index, lane, query_rows[warp]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Backward: redo in float64 the gradients that rows fp32 cannot carry L for reach
// ---------------------------------------------------------------------------------------------------------

namespace sta {
namespace exact {

// Whether the backward does row with stored log-sum-exp `l` in float64: it attends something (l ≠ −inf)
// and l is NaN, ±inf or of magnitude ≥ EXACT_LSE_LIMIT.
__device__ __forceinline__ bool needs_exact_backward(float l) {
    return l != neg_inf() && !(finite_float(l) && fabsf(l) < EXACT_LSE_LIMIT);
}

// Calls body(query, valid) for the real queries that attend key row `row`, 32 positions at a time, one per
// lane: the real positions of every query tile whose key tiles hold the key's tile (the inverse lists; for a
// text key, every tile), then the valid text queries. Warp-uniform, like for_each_key.
template <typename Body>
__device__ __forceinline__ void for_each_query(const Row& row, const int* window_of_head, const int* query_tile_start,
                                               const int* query_tiles, int lane, Body&& body) {
    // The inverse lists have the forward lists' form (CSR by window and tile), and text rows pair with
    // every tile and the valid text either way: the same walk.
    for_each_key(row, window_of_head, query_tile_start, query_tiles, lane, body);
}

}  // namespace exact
}  // namespace sta

// Clears the key marks (one byte per row of [B·H·S]) before sta_exact_rows_backward_queries sets them.
// Grid = ⌈B·H·S / STA_EXACT_THREADS⌉, one row per thread.
extern "C" __global__ void
sta_exact_rows_backward_clear(unsigned char* key_marks, long long row_count) {
    const long long row = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (row < row_count) key_marks[row] = 0;
}

// One warp per row. A row that needs the float64 backward (needs_exact_backward) gets, as the reference
// computes them: L = log Σ exp(s) from its scores (maximum first), stored in exact_lse[row]; Δ = dO·O;
// dQ = scale · Σ_j P_j (dO·v_j − Δ) k_j with P_j = exp(s_j − L), written over the fast kernel's row; and a
// mark on every key it attends, whose dK and dV sta_exact_rows_backward_keys then redoes. NaN or ±inf in
// its q, a NaN score, a +inf score or every score −inf make L NaN and the dQ row NaN (the reference's result
// with a NaN lse); its keys are marked all the same.
extern "C" __global__ void
sta_exact_rows_backward_queries(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* o,
                                const uint16_t* dout, const float* lse, uint16_t* dq, double* exact_lse,
                                unsigned char* key_marks, const int* window_of_head, const int* key_tile_start,
                                const int* key_tiles, int heads, long long row_count, float scale,
                                const int* text_valid, int default_text_valid) {
    using namespace sta;
    using namespace sta::exact;
    __shared__ double query_rows[WARPS][HEAD_DIM];
    __shared__ double gradient_rows[WARPS][HEAD_DIM];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long row_index = static_cast<long long>(blockIdx.x) * WARPS + warp;
    if (row_index >= row_count) return;   // warp-uniform
    if (!needs_exact_backward(lse[row_index])) return;
    const Row row(row_index, heads, text_valid, default_text_valid);
    if (!row.real) return;
    const long long head_base = row.head_base();

    double* query = query_rows[warp];
    double* gradient = gradient_rows[warp];
    bool poisoned = false;
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        const long long element = row_index * HEAD_DIM + lane + 32 * i;
        const double value = to_double(q[element]);
        query[lane + 32 * i] = value;
        poisoned = poisoned || !(value - value == 0.0);
        gradient[lane + 32 * i] = to_double(dout[element]);
    }
    __syncwarp();
    // Δ = dO·O summed as dP = dO·v_j is below, so that a row whose output is one value row gets dP − Δ = 0.
    const double delta = dot_row(gradient, o + row_index * HEAD_DIM);
    const double scale_d = static_cast<double>(scale);

    // Pass 1: the maximum score. Pass 2: L.
    double maximum = neg_inf_double();
    if (!__any_sync(FULL_MASK, poisoned)) {
        for_each_key(row, window_of_head, key_tile_start, key_tiles, lane, [&](int key, bool valid) {
            if (!valid) return;
            const double s = score_row(scale_d, query, k + (head_base + key) * HEAD_DIM);
            if (is_nan_double(s)) poisoned = true;
            else maximum = fmax(maximum, s);
        });
    }
    poisoned = __any_sync(FULL_MASK, poisoned);
    maximum = warp_max(maximum);
    poisoned = poisoned || !(maximum - maximum == 0.0);
    double log_sum = nan_double();
    if (!poisoned) {
        double sum = 0.0;
        for_each_key(row, window_of_head, key_tile_start, key_tiles, lane, [&](int key, bool valid) {
            if (valid) sum += exp(score_row(scale_d, query, k + (head_base + key) * HEAD_DIM) - maximum);
        });
        log_sum = maximum + log(warp_sum(sum));
    }
    if (lane == 0) exact_lse[row_index] = log_sum;

    // Pass 3: dS_j per key (one lane each), then dQ += dS_j k_j (lanes over head-dim columns); marks.
    double accumulator[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) accumulator[i] = 0.0;
    for_each_key(row, window_of_head, key_tile_start, key_tiles, lane, [&](int key, bool valid) {
        double score_gradient = 0.0;
        if (valid) {
            key_marks[head_base + key] = 1;
            if (!poisoned) {
                const long long key_row = (head_base + key) * HEAD_DIM;
                const double p = exp(score_row(scale_d, query, k + key_row) - log_sum);
                score_gradient = p * (dot_row(gradient, v + key_row) - delta);
            }
        }
        if (poisoned) return;   // warp-uniform
        for (int j = 0; j < 32; ++j) {
            const int key_valid = __shfl_sync(FULL_MASK, static_cast<int>(valid), j);
            const double ds = __shfl_sync(FULL_MASK, score_gradient, j);
            const int key_j = __shfl_sync(FULL_MASK, key, j);
            if (!key_valid) continue;   // warp-uniform
            const uint16_t* k_row = k + (head_base + key_j) * HEAD_DIM;
#pragma unroll
            for (int i = 0; i < PER_LANE; ++i) accumulator[i] += ds * to_double(k_row[lane + 32 * i]);
        }
    });
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        dq[row_index * HEAD_DIM + lane + 32 * i] =
            poisoned ? storage_nan() : to_storage(__double2float_rn(scale_d * accumulator[i]));
    }
}

// One warp per key row marked by sta_exact_rows_backward_queries: dK and dV recomputed in float64 over every
// query that attends the key, as the reference computes them — P_i = exp(s_i − L_i) with L_i the float64
// value sta_exact_rows_backward_queries stored for rows that need it and the stored lse otherwise,
// Δ_i = dO_i·O_i, dS_i = P_i (dO_i·v − Δ_i), dV = Σ_i P_i dO_i, dK = scale · Σ_i dS_i q_i — written over the fast
// kernel's rows. A NaN L_i (NaN inputs) makes the rows NaN.
extern "C" __global__ void
sta_exact_rows_backward_keys(const uint16_t* q, const uint16_t* k, const uint16_t* v, const uint16_t* o,
                             const uint16_t* dout, const float* lse, uint16_t* dk, uint16_t* dv,
                             const double* exact_lse, const unsigned char* key_marks, const int* window_of_head,
                             const int* query_tile_start, const int* query_tiles, int heads, long long row_count,
                             float scale, const int* text_valid, int default_text_valid) {
    using namespace sta;
    using namespace sta::exact;
    __shared__ double key_rows[WARPS][HEAD_DIM];
    __shared__ double value_rows[WARPS][HEAD_DIM];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long row_index = static_cast<long long>(blockIdx.x) * WARPS + warp;
    if (row_index >= row_count) return;   // warp-uniform
    if (key_marks[row_index] == 0) return;
    const Row row(row_index, heads, text_valid, default_text_valid);
    if (!row.real) return;
    const long long head_base = row.head_base();

    double* key = key_rows[warp];
    double* value = value_rows[warp];
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        key[lane + 32 * i] = to_double(k[row_index * HEAD_DIM + lane + 32 * i]);
        value[lane + 32 * i] = to_double(v[row_index * HEAD_DIM + lane + 32 * i]);
    }
    __syncwarp();
    const double scale_d = static_cast<double>(scale);

    double key_accumulator[PER_LANE], value_accumulator[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) key_accumulator[i] = value_accumulator[i] = 0.0;
    for_each_query(row, window_of_head, query_tile_start, query_tiles, lane, [&](int query, bool valid) {
        double p = 0.0, score_gradient = 0.0;
        if (valid) {
            const long long query_row = (head_base + query) * HEAD_DIM;
            const float stored = lse[head_base + query];
            const double l = needs_exact_backward(stored) ? exact_lse[head_base + query] : static_cast<double>(stored);
            // The score, Δ and dP summed as sta_exact_rows_backward_queries sums them (dot_row).
            p = exp(score_row(scale_d, key, q + query_row) - l);
            score_gradient = p * (dot_row(value, dout + query_row) - dot_row(dout + query_row, o + query_row));
        }
        for (int j = 0; j < 32; ++j) {
            const int query_valid = __shfl_sync(FULL_MASK, static_cast<int>(valid), j);
            const double p_j = __shfl_sync(FULL_MASK, p, j);
            const double ds_j = __shfl_sync(FULL_MASK, score_gradient, j);
            const int query_j = __shfl_sync(FULL_MASK, query, j);
            if (!query_valid) continue;   // warp-uniform
            const long long query_row = (head_base + query_j) * HEAD_DIM;
#pragma unroll
            for (int i = 0; i < PER_LANE; ++i) {
                value_accumulator[i] += p_j * to_double(dout[query_row + lane + 32 * i]);
                key_accumulator[i] += ds_j * to_double(q[query_row + lane + 32 * i]);
            }
        }
    });
#pragma unroll
    for (int i = 0; i < PER_LANE; ++i) {
        dk[row_index * HEAD_DIM + lane + 32 * i] = to_storage(__double2float_rn(scale_d * key_accumulator[i]));
        dv[row_index * HEAD_DIM + lane + 32 * i] = to_storage(__double2float_rn(value_accumulator[i]));
    }
}
