/*
 * The vector micro-kernels of the CPU attention backend (STACPUKernels), in C so that each one can be
 * compiled twice: once for x86-64-v3 (AVX2, FMA, F16C; per-function target attributes, no build flags)
 * and once for the baseline of the target, and picked at run time from what the CPU supports.
 *
 * Every function works on fp32 values; 16-bit storage is converted by the row loads and stores.
 * Layouts follow STACPUKernels: "transposed" blocks are [depth][rowStride] with query (or key) rows as
 * the lanes of 8-wide vectors. All pointers may be unaligned. No function allocates or blocks.
 */
#ifndef STA_CPU_KERNELS_C_H
#define STA_CPU_KERNELS_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Storage kinds of the row loads and stores. */
enum {
    STA_CPU_FLOAT32 = 0,
    STA_CPU_FLOAT16 = 1,
    STA_CPU_BFLOAT16 = 2,
};

/* Implementations the dispatch can choose. */
enum {
    /* The target's baseline instructions (SSE2 on x86-64). */
    STA_CPU_LEVEL_PORTABLE = 0,
    /* AVX2 with FMA and F16C (x86-64-v3): 8-lane fused multiply-adds, hardware fp16 conversion. */
    STA_CPU_LEVEL_AVX2 = 1,
};

/* The best implementation this CPU supports (checked once with cpuid), or STA_CPU_LEVEL_PORTABLE when
   the environment variable STA_CPU_KERNELS is "portable" (to measure or test the fallback). */
int32_t sta_cpu_best_level(void);

/* Every kernel below takes the implementation as its first argument, `level` (normally
   sta_cpu_best_level(); a level the CPU lacks is lowered to the best one it has). */

/* The products of attention, on blocks of 16 lanes:
 *
 *   out[c · outColumnStride + g·16 + l] = init + Σ_{k < depth} x[k · xStride + g·16 + l] · y[k · yStride + c · yColumnStride]
 *
 * for every group g < rowGroups16, lane l < 16 and column c < columns, where init is 0 (mode 0), the
 * old value of out (mode 1) or the old value times alpha[g·16 + l] (mode 2, the online-softmax rescale).
 * Cost: 2 · 16 · rowGroups16 · columns · depth flops, in a register-blocked 16×6 kernel. */
void sta_cpu_product(int32_t level, ptrdiff_t rowGroups16, ptrdiff_t depth, const float *x, ptrdiff_t xStride, const float *y,
                     ptrdiff_t yStride, ptrdiff_t yColumnStride, ptrdiff_t columns, float *out,
                     ptrdiff_t outColumnStride, int32_t mode, const float *alpha);

/* One online-softmax step over a chunk of scores in base-2 units, Sᵀ [keyCount][rowStride]; for each of
 * the rowGroups8 groups of 8 lanes: m' = max(m, max_j s_j), alpha = 2^(m − m'), s_j ← 2^(s_j − m'),
 * l' = alpha · l + Σ_j 2^(s_j − m'). runningMax, runningSum and alpha hold rowGroups8 · 8 lanes. */
void sta_cpu_online_softmax_step(int32_t level, float *scores, ptrdiff_t rowStride, ptrdiff_t keyCount, ptrdiff_t rowGroups8,
                                 float *runningMax, float *runningSum, float *alpha);

/* Backward, key-major block (lanes = keys): for each column j < columns (one query),
 * P = 2^(S − lse[j]) over paddedLanes lanes of column j of `scores` (written back), and
 * gradients ← P ∘ (gradients − delta[j]). Columns are rowStride floats apart. */
void sta_cpu_backward_scores_by_column(int32_t level, float *scores, float *gradients, ptrdiff_t rowStride, ptrdiff_t columns,
                                       ptrdiff_t paddedLanes, const float *lse, const float *delta);

/* Backward, query-major block (lanes = queries): gradients ← 2^(S − lse[lane]) ∘ (gradients − delta[lane])
 * over columns × paddedLanes; lse and delta per lane. `scores` is read only. */
void sta_cpu_backward_scores_by_lane(int32_t level, const float *scores, float *gradients, ptrdiff_t rowStride,
                                     ptrdiff_t columns, ptrdiff_t paddedLanes, const float *lse,
                                     const float *delta);

/* destination[i] = value(base[offset + i]) · scale for i < count, base of storage `kind`. */
void sta_cpu_load_row(int32_t level, int32_t kind, const void *base, ptrdiff_t offset, ptrdiff_t count, float scale,
                      float *destination);

/* base[offset + i] = source[i] for i < count, rounded to nearest even for the 16-bit kinds (NaN stays NaN). */
void sta_cpu_store_row(int32_t level, int32_t kind, const float *source, ptrdiff_t count, void *base, ptrdiff_t offset);

/* Σ a[i] · b[i] in fp32. */
float sta_cpu_dot(int32_t level, const float *a, const float *b, ptrdiff_t count);

/* The FMA peak probe: 12 independent chains of 8-lane multiply-adds, `iterations` steps; returns a value
 * that depends on every chain (so that nothing is optimised away). */
float sta_cpu_fma_chains(int32_t level, ptrdiff_t iterations, float seed);

#ifdef __cplusplus
}
#endif

#endif
