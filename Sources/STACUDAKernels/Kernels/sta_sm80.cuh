// Sliding Tile Attention, the part the portable (sm_80 and newer) kernels share: the PTX wrappers of
// Ampere's tensor-core path (cp.async, ldmatrix, mma.sync m16n8k16) and the swizzled shared-memory tiles
// the forward and backward kernels stage tokens in. After sta_common.cuh.
//
// Shape constant (NVRTC -D, chosen by the Swift launcher): STA_THREADS, threads per block.

#pragma once

#include "sta_common.cuh"

#if !defined(STA_THREADS)
#error "define STA_THREADS (threads per block; the Swift launcher chooses it)"
#endif

namespace sta {

constexpr int THREADS = STA_THREADS;
constexpr int WARPS = THREADS / 32;
static_assert(THREADS % 32 == 0, "STA_THREADS must be a whole number of warps");

// ---------------------------------------------------------------------------------------------------------
// PTX wrappers
// ---------------------------------------------------------------------------------------------------------

namespace ptx {

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

// The block indices through volatile asm: the compiler cannot hoist such a read (or what is computed from
// it) out of a loop or keep it live across one, so values derived from them are recomputed where used.
__device__ __forceinline__ int block_index_x() {
    int value;
    asm volatile("mov.u32 %0, %%ctaid.x;\n" : "=r"(value));
    return value;
}
__device__ __forceinline__ int block_index_y() {
    int value;
    asm volatile("mov.u32 %0, %%ctaid.y;\n" : "=r"(value));
    return value;
}
__device__ __forceinline__ int block_index_z() {
    int value;
    asm volatile("mov.u32 %0, %%ctaid.z;\n" : "=r"(value));
    return value;
}

}  // namespace ptx

// ---------------------------------------------------------------------------------------------------------
// Shared-memory tiles
// ---------------------------------------------------------------------------------------------------------
//
// A tile of ROWS tokens × HEAD_DIM 16-bit values, row-major, ROW_BYTES per row, with the 16-byte units of
// each row XOR-swizzled by (row mod 8): unit u of row r lives at r·ROW_BYTES + ((u ^ (r & 7)) · 16).
// Rows are a multiple of 128 bytes apart, so without the swizzle the 8 row addresses of one ldmatrix
// matrix (8 consecutive rows, same unit) would hit the same 4 banks; with it they cover 8 distinct 16-byte
// bank groups = all 32 banks. ROW_UNITS ≥ 8, so u ^ (r & 7) stays inside the row.

constexpr int ROW_BYTES = HEAD_DIM * 2;          // one token's head vector in shared memory
constexpr int ROW_UNITS = ROW_BYTES / 16;        // 16-byte units per row: 8 (D 64) or 16 (D 128)

__device__ __forceinline__ uint32_t swizzled(int row, int unit) {
    return static_cast<uint32_t>(row * ROW_BYTES + ((unit ^ (row & 7)) << 4));
}

// Cooperative cp.async load of `rows` (≤ ROWS) consecutive tokens from `source` (a head's [SEQ, D] matrix,
// first token `first`) into a swizzled tile; rows ≥ rows, or for which `keep(row)` is false, are zero-filled
// without reading global memory. Returns whether this thread loaded at least one kept row.
template <int ROWS, typename Keep>
__device__ __forceinline__ bool load_tile_async(uint32_t tile, const uint16_t* source, int first, int rows,
                                                Keep keep) {
    static_assert((ROWS * ROW_UNITS) % THREADS == 0, "whole passes only");
    bool any = false;
#pragma unroll
    for (int pass = 0; pass < ROWS * ROW_UNITS / THREADS; ++pass) {
        const int index = pass * THREADS + static_cast<int>(threadIdx.x);
        const int row = index / ROW_UNITS, unit = index % ROW_UNITS;
        const bool valid = row < rows && keep(row);
        const uint16_t* from = valid ? source + static_cast<size_t>(first + row) * HEAD_DIM + unit * 8 : source;
        ptx::cp_async_16(tile + swizzled(row, unit), from, valid);
        any |= valid;
    }
    return any;
}

// The same load for a run of `rows` (≤ ROWS) consecutive tokens that are all kept, starting at `first_row`
// (a pointer to the first token's head vector): every thread's row and unit are fixed, and each pass moves
// THREADS / ROW_UNITS rows further (a multiple of 8, so the swizzle of the thread's unit is the same in every
// pass), so a pass costs a compare, a select of a 32-bit byte offset (a row past `rows` reads nothing and
// points at `first_row`), one 64-bit add and the copy.
template <int ROWS>
__device__ __forceinline__ void load_rows_async(uint32_t tile, const uint16_t* first_row, int rows) {
    constexpr int ROWS_PER_PASS = THREADS / ROW_UNITS;
    static_assert(THREADS % ROW_UNITS == 0 && ROWS_PER_PASS % 8 == 0 && ROWS % ROWS_PER_PASS == 0,
                  "whole passes of whole swizzle periods only");
    const int row = static_cast<int>(threadIdx.x) / ROW_UNITS, unit = static_cast<int>(threadIdx.x) % ROW_UNITS;
    const uint32_t to = tile + swizzled(row, unit);
    const unsigned char* base = reinterpret_cast<const unsigned char*>(first_row);
    const uint32_t from = static_cast<uint32_t>(row * ROW_BYTES + unit * 16);
#pragma unroll
    for (int pass = 0; pass < ROWS / ROWS_PER_PASS; ++pass) {
        const bool valid = row + pass * ROWS_PER_PASS < rows;
        ptx::cp_async_16(to + pass * ROWS_PER_PASS * ROW_BYTES,
                         base + (valid ? from + pass * ROWS_PER_PASS * ROW_BYTES : 0u), valid);
    }
}

// Fragment addressing. A warp-wide ldmatrix.x4 reads 16-byte unit u = 2k + h (h = 0 or 1, chosen by the lane)
// of some row r: shared offset r·ROW_BYTES + ((u ^ (r & 7)) << 4). Because 2k and h share no bits, that equals
// (r·ROW_BYTES + ((h ^ (r & 7)) << 4)) ^ (k << 5): row·ROW_BYTES has zero bits 0-6 (ROW_BYTES ≥ 128) and
// k << 5 stays in bits 5-6 (D 64, k < 4) or 5-7 (D 128, k < 8, ROW_BYTES = 256). Tile offsets are multiples of
// 1 KiB, so the XOR may be applied to tile offset + lane offset as well. Each lane thus keeps one offset
// per tile and derives every fragment address with one XOR (head-dim step) and an immediate (16-row step),
// instead of holding a register per fragment address.
__device__ __forceinline__ uint32_t lane_offset(int row, int unit_half) {
    return static_cast<uint32_t>(row * ROW_BYTES + ((unit_half ^ (row & 7)) << 4));
}

}  // namespace sta
