// Sliding Tile Attention window search: the device half of measuring a capture. Two kernels over
// [B, H, S, D] tensors, with every problem size a run-time argument (one compile per architecture):
//
//   sta_search_prepare     converts q, k or v from the dtype it was stored in (f32, f16, bf16, f64) into
//                          the dtype attention runs in (bf16 or f16), zeroes the rows attention never
//                          reads, and counts the non-finite values in the rows it reads, with the flat
//                          index of the first;
//   sta_search_error_sums  per (batch, head) and block of rows, Σ (sparse − full)², Σ |sparse − full| and
//                          Σ full² over the compared rows, in fp64, written to a partial-sum table;
//   sta_search_sum_blocks  adds each (candidate, batch·head)'s blocks up in a fixed order (so the result
//                          does not depend on the schedule): three doubles per (candidate, batch·head)
//                          are all that goes back to the host.
//
// Which rows count is a byte per sequence position, `row_kinds[s]`: 0 = never read (holes, padding text),
// 1 = read (valid text), 2 = read and compared (real video tokens). NVRTC ships no CUDA headers, so the
// 16-bit types are handled as raw bits with PTX conversions.
//
// Work split: one warp per row, lanes over the head dimension (a row of D 16-bit values is one or two
// coalesced 64-byte loads per warp); blocks of 256 threads.

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;

namespace search {

// Storage kinds, as the Swift launcher passes them: 0 = f32, 1 = f16, 2 = bf16, 3 = f64.
constexpr int KIND_F32 = 0;
constexpr int KIND_BF16 = 2;
constexpr int KIND_F64 = 3;

// Row kinds (1 = read but not compared needs no name here).
constexpr uint8_t ROW_COMPARED = 2;

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;

__device__ __forceinline__ float f16_to_float(uint16_t bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(value) : "h"(bits));
    return value;
}

__device__ __forceinline__ float bf16_to_float(uint16_t bits) { return __uint_as_float(uint32_t(bits) << 16); }

__device__ __forceinline__ uint16_t float_to_f16(float value) {
    uint16_t bits;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
    return bits;
}

__device__ __forceinline__ uint16_t float_to_bf16(float value) {
    uint16_t bits;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(bits) : "f"(value));
    return bits;
}

// A 16-bit value of `kind` (f16 or bf16) as a float.
__device__ __forceinline__ float half_to_float(uint16_t bits, int kind) {
    return kind == KIND_BF16 ? bf16_to_float(bits) : f16_to_float(bits);
}

// Whether the 16-bit value of `kind` is NaN or ±inf (every exponent bit set).
__device__ __forceinline__ bool half_is_non_finite(uint16_t bits, int kind) {
    const uint16_t exponent = kind == KIND_BF16 ? 0x7F80 : 0x7C00;
    return (bits & exponent) == exponent;
}

// Element `index` of `source` (stored as `source_kind`) rounded to `kind` (f16 or bf16). f64 goes through
// f32, as the host reads such captures.
__device__ __forceinline__ uint16_t load_as_half(const void* source, int source_kind, uint64_t index, int kind) {
    float value;
    switch (source_kind) {
    case KIND_F32: value = static_cast<const float*>(source)[index]; break;
    case KIND_F64: value = float(static_cast<const double*>(source)[index]); break;
    default: {
        const uint16_t bits = static_cast<const uint16_t*>(source)[index];
        if (source_kind == kind) return bits;
        value = half_to_float(bits, source_kind);
    }
    }
    return kind == KIND_BF16 ? float_to_bf16(value) : float_to_f16(value);
}

__device__ __forceinline__ double warp_sum(double value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
    return value;
}

}  // namespace search

// destination[i] = source[i] rounded to `kind`, for every element of [rows = B·H·S, head_dim], and 0 in the
// rows whose kind is 0 (never read by attention: the Hopper kernel multiplies such keys by zero weights, so
// they must be finite). destination may be source itself when the source already holds `kind`. Adds the
// count of non-finite values in read rows to counters[0] and lowers counters[1] to the flat index of the
// first; the host sets them to 0 and ~0 first.
extern "C" __global__ void __launch_bounds__(search::THREADS)
sta_search_prepare(const void* source, int source_kind, uint16_t* destination, int kind,
                   const uint8_t* __restrict__ row_kinds, uint64_t rows, int sequence_length, int head_dim,
                   uint64_t* __restrict__ counters) {
    using namespace search;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    uint64_t count = 0, first = ~0ull;
    for (uint64_t row = uint64_t(blockIdx.x) * WARPS + warp; row < rows; row += uint64_t(gridDim.x) * WARPS) {
        const uint8_t row_kind = __ldg(row_kinds + row % uint64_t(sequence_length));
        const uint64_t base = row * uint64_t(head_dim);
        for (int d = lane; d < head_dim; d += 32) {
            if (row_kind == 0) {
                destination[base + d] = 0;
                continue;
            }
            const uint16_t bits = load_as_half(source, source_kind, base + d, kind);
            destination[base + d] = bits;
            if (half_is_non_finite(bits, kind)) {
                ++count;
                first = min(first, base + d);
            }
        }
    }
    // One atomic pair per warp that saw something.
    for (int offset = 16; offset > 0; offset >>= 1) {
        count += __shfl_down_sync(0xffffffffu, count, offset);
        first = min(first, __shfl_down_sync(0xffffffffu, first, offset));
    }
    if (lane == 0 && count != 0) {
        atomicAdd(counters, count);
        atomicMin(counters + 1, first);
    }
}

// Grid: blocks_per_head · B·H blocks; block x covers (batch·head) x / blocks_per_head and rows
// [p · rows_per_block, min(S, (p + 1) · rows_per_block)) with p = x % blocks_per_head. Writes
// partials[3 · x + {0, 1, 2}] = Σ (sparse − full)², Σ |sparse − full|, Σ full² over the compared rows of
// that range (fp64; 0 for a range without compared rows). sparse and full are 16-bit values of `kind`.
extern "C" __global__ void __launch_bounds__(search::THREADS)
sta_search_error_sums(const uint16_t* __restrict__ sparse, const uint16_t* __restrict__ full, int kind,
                      const uint8_t* __restrict__ row_kinds, int sequence_length, int head_dim, int blocks_per_head,
                      int rows_per_block, double* __restrict__ partials) {
    using namespace search;
    __shared__ double block_sums[3][WARPS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const uint64_t batch_head = blockIdx.x / blocks_per_head;
    const int part = blockIdx.x % blocks_per_head;
    const int row_begin = part * rows_per_block;
    const int row_end = min(sequence_length, row_begin + rows_per_block);
    double squared = 0, absolute = 0, reference = 0;
    for (int s = row_begin + warp; s < row_end; s += WARPS) {
        if (__ldg(row_kinds + s) != ROW_COMPARED) continue;
        const uint64_t base = (batch_head * uint64_t(sequence_length) + uint64_t(s)) * uint64_t(head_dim);
        for (int d = lane; d < head_dim; d += 32) {
            const double f = half_to_float(__ldg(full + base + d), kind);
            const double difference = double(half_to_float(__ldg(sparse + base + d), kind)) - f;
            squared = fma(difference, difference, squared);
            absolute += fabs(difference);
            reference = fma(f, f, reference);
        }
    }
    squared = warp_sum(squared);
    absolute = warp_sum(absolute);
    reference = warp_sum(reference);
    if (lane == 0) {
        block_sums[0][warp] = squared;
        block_sums[1][warp] = absolute;
        block_sums[2][warp] = reference;
    }
    __syncthreads();
    if (threadIdx.x < 3) {
        double total = 0;
        for (int w = 0; w < WARPS; ++w) total += block_sums[threadIdx.x][w];
        partials[3 * uint64_t(blockIdx.x) + threadIdx.x] = total;
    }
}

// sums[3 · g + t] = Σ_p partials[3 · (g · blocks_per_head + p) + t] for every group g < groups (a
// (candidate, batch·head) pair) and size t: the blocks of each group added in order, one thread per
// (group, size), so the result is the same on every run.
extern "C" __global__ void __launch_bounds__(search::THREADS)
sta_search_sum_blocks(const double* __restrict__ partials, int blocks_per_head, uint64_t groups,
                      double* __restrict__ sums) {
    const uint64_t index = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= 3 * groups) return;
    const uint64_t group = index / 3, size = index % 3;
    const double* row = partials + group * uint64_t(blocks_per_head) * 3 + size;
    double total = 0;
    for (int p = 0; p < blocks_per_head; ++p) total += row[3 * uint64_t(p)];
    sums[index] = total;
}
