// Test harness for sta_forward_sm90.cu: a shared library that Python (ctypes) drives on the GPU machine.
//
// Build (one library per set of compile-time constants; see check.py):
//   nvcc -gencode=arch=compute_90a,code=sm_90a -std=c++17 -shared -Xcompiler -fPIC -D... \
//        -o libsta_<tag>.so scripts/hopper/harness.cu
// Exports:
//   sta_smem_bytes(), sta_grid(batch, heads): launch geometry;
//   sta_launch(q, k, v, o, lse, window_of_head, key_tile_start, key_tiles, batch, heads, scale, stream);
//   probe_qk(q, k, s_out, stream): one warpgroup's S = Q[0:64]·K[0:128]ᵀ (fp32 [64][128]) through the
//     kernel's own TMA, descriptors and wgmma wrappers (Q and K given as [128][D] 16-bit matrices);
//   probe_pv(p, v, o_out, stream): O = P·V for P [64][128] (16-bit, registers) and V [128][D].
#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>
#include <cstdio>
#include <cstring>

#include "../../Sources/STACUDAKernels/Kernels/sta_forward_sm90.cu"

namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
    if (!fn) {
        cudaDriverEntryPointQueryResult result;
        void* p = nullptr;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &result) !=
                cudaSuccess ||
            result != cudaDriverEntryPointSuccess) {
            fprintf(stderr, "cuTensorMapEncodeTiled not found\n");
            return nullptr;
        }
        fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }
    return fn;
}

// The map the kernel expects: 3D view [slices][rows][D], box {64, 64, 1}, 128-byte swizzle.
int make_map(StaTensorMap* out, const void* base, long long slices, long long rows) {
    auto fn = encode_fn();
    if (!fn) return -1;
    CUtensorMap map;
    cuuint64_t dims[3] = {(cuuint64_t)STA_HEAD_DIM, (cuuint64_t)rows, (cuuint64_t)slices};
    cuuint64_t strides[2] = {(cuuint64_t)STA_HEAD_DIM * 2, (cuuint64_t)rows * STA_HEAD_DIM * 2};
    cuuint32_t box[3] = {64, (cuuint32_t)BOX_ROWS, 1};
    cuuint32_t estrides[3] = {1, 1, 1};
#if defined(STA_BF16) && STA_BF16
    CUtensorMapDataType type = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
#else
    CUtensorMapDataType type = CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
#endif
    CUresult r = fn(&map, type, 3, const_cast<void*>(base), dims, strides, box, estrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "cuTensorMapEncodeTiled failed: %d\n", (int)r);
        return -2;
    }
    static_assert(sizeof(CUtensorMap) == sizeof(StaTensorMap), "tensor map size");
    memcpy(out, &map, sizeof(map));
    return 0;
}

__global__ void __launch_bounds__(128, 1) probe_qk_kernel(const __grid_constant__ StaTensorMap q_map,
                                                            const __grid_constant__ StaTensorMap k_map, float* s_out) {
    __shared__ __align__(8) u64 bar[1];
    extern __shared__ unsigned char dyn[];
    const u32 base = (smem_address(dyn) + 1023u) & ~1023u;
    const u32 q_smem = base, k_smem = base + Q_BYTES;
    const u32 b = smem_address(bar);
    if (threadIdx.x == 0) {
        mbar_init(b, 1);
        fence_barrier_init();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        mbar_expect_tx(b, Q_BYTES + KV_BYTES);
        for (int p = 0; p < PANELS; ++p) {
            for (int r = 0; r < BLOCK_M; r += BOX_ROWS) tma_load_3d(q_smem + p * Q_PANEL_BYTES + r * 128, &q_map, b, p * 64, r, 0);
            for (int r = 0; r < BLOCK_N; r += BOX_ROWS) tma_load_3d(k_smem + p * KV_PANEL_BYTES + r * 128, &k_map, b, p * 64, r, 0);
        }
    }
    mbar_wait(b, 0);
    float s[BLOCK_N / 2];
    issue_qk(s, q_smem, k_smem);
    wgmma_wait<0>();
    fence_registers(s);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int j = 0; j < 16; ++j)  // the first 128 columns (K has 128 rows; the rest read as zeros)
        for (int e = 0; e < 2; ++e) {
            s_out[(warp * 16 + g) * 128 + 8 * j + 2 * t + e] = s[4 * j + e];
            s_out[(warp * 16 + g + 8) * 128 + 8 * j + 2 * t + e] = s[4 * j + 2 + e];
        }
}

__global__ void __launch_bounds__(128, 1) probe_pv_kernel(const u16* p_in, const __grid_constant__ StaTensorMap v_map,
                                                            float* o_out) {
    __shared__ __align__(8) u64 bar[1];
    extern __shared__ unsigned char dyn[];
    const u32 base = (smem_address(dyn) + 1023u) & ~1023u;
    const u32 b = smem_address(bar);
    if (threadIdx.x == 0) {
        mbar_init(b, 1);
        fence_barrier_init();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        mbar_expect_tx(b, KV_BYTES);
        for (int p = 0; p < PANELS; ++p)
            for (int r = 0; r < BLOCK_N; r += BOX_ROWS) tma_load_3d(base + p * KV_PANEL_BYTES + r * 128, &v_map, b, p * 64, r, 0);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    // P fragments as the kernel builds them from the S accumulator layout.
    u32 p[BLOCK_N / 4];
    for (int i = 0; i < BLOCK_N / 4; ++i) p[i] = 0;  // keys past 128: zero weights (V rows there read as zeros)
    for (int j = 0; j < 16; ++j) {
        const int r0 = warp * 16 + g, c = 8 * j + 2 * t;
        p[2 * j] = (u32)p_in[r0 * 128 + c] | ((u32)p_in[r0 * 128 + c + 1] << 16);
        p[2 * j + 1] = (u32)p_in[(r0 + 8) * 128 + c] | ((u32)p_in[(r0 + 8) * 128 + c + 1] << 16);
    }
    float o[HEAD_DIM / 2];
    for (int i = 0; i < HEAD_DIM / 2; ++i) o[i] = 0.f;
    mbar_wait(b, 0);
    issue_pv(o, p, base);
    wgmma_wait<0>();
    fence_registers(o);
    for (int j = 0; j < HEAD_DIM / 8; ++j)
        for (int e = 0; e < 2; ++e) {
            o_out[(warp * 16 + g) * HEAD_DIM + 8 * j + 2 * t + e] = o[4 * j + e];
            o_out[(warp * 16 + g + 8) * HEAD_DIM + 8 * j + 2 * t + e] = o[4 * j + 2 + e];
        }
}

}  // namespace

extern "C" int sta_smem_bytes() { return STA_SMEM_BYTES; }

extern "C" long long sta_grid(int batch, int heads) {
    return (long long)batch * heads * (TEXT_QBLOCKS + NUM_TILES * QBLOCKS_PER_TILE);
}

extern "C" int sta_launch(const void* q, const void* k, const void* v, void* o, float* lse, const int* window_of_head,
                          const int* key_tile_start, const int* key_tiles, int batch, int heads, float scale,
                          void* stream) {
    StaTensorMap qm, km, vm;
    const long long slices = (long long)batch * heads;
    if (make_map(&qm, q, slices, SEQ) || make_map(&km, k, slices, SEQ) || make_map(&vm, v, slices, SEQ)) return -1;
    static bool configured = false;
    if (!configured) {
        cudaError_t e = cudaFuncSetAttribute(sta_forward_sm90, cudaFuncAttributeMaxDynamicSharedMemorySize, STA_SMEM_BYTES);
        if (e != cudaSuccess) {
            fprintf(stderr, "cudaFuncSetAttribute: %s\n", cudaGetErrorString(e));
            return -3;
        }
        configured = true;
    }
    const long long grid = sta_grid(batch, heads);
    sta_forward_sm90<<<(unsigned)grid, THREADS, STA_SMEM_BYTES, (cudaStream_t)stream>>>(
        qm, km, vm, (u16*)o, lse, window_of_head, key_tile_start, key_tiles, heads, batch, scale, (const u16*)q);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        fprintf(stderr, "launch: %s\n", cudaGetErrorString(e));
        return -4;
    }
    return 0;
}

extern "C" int probe_qk(const void* q, const void* k, float* s_out, void* stream) {
    StaTensorMap qm, km;
    if (make_map(&qm, q, 1, 128) || make_map(&km, k, 1, 128)) return -1;
    const int smem = 1024 + Q_BYTES + KV_BYTES;
    cudaFuncSetAttribute(probe_qk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    probe_qk_kernel<<<1, 128, smem, (cudaStream_t)stream>>>(qm, km, s_out);
    return cudaGetLastError() == cudaSuccess ? 0 : -4;
}

extern "C" int probe_pv(const void* p, const void* v, float* o_out, void* stream) {
    StaTensorMap vm;
    if (make_map(&vm, v, 1, 128)) return -1;
    const int smem = 1024 + KV_BYTES;
    cudaFuncSetAttribute(probe_pv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    probe_pv_kernel<<<1, 128, smem, (cudaStream_t)stream>>>((const u16*)p, vm, o_out);
    return cudaGetLastError() == cudaSuccess ? 0 : -4;
}

