/*
 * Dispatch of the CPU micro-kernels: KernelBody.h is compiled once for the target's baseline and, on
 * x86-64, once more under `target("avx2,fma,f16c")` (a per-function attribute, so the package needs no
 * compiler flags); the exported functions pick one at run time from cpuid.
 */
#include "STACPUKernelsC.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define STA_X86 1
#else
#define STA_X86 0
#endif

typedef float sta_f8 __attribute__((vector_size(32)));
typedef int32_t sta_i8 __attribute__((vector_size(32)));
typedef uint32_t sta_u8 __attribute__((vector_size(32)));
typedef uint16_t sta_u16x8 __attribute__((vector_size(16)));

/* ---- scalar conversions (exact, round to nearest even; NaN stays a quiet NaN) ---- */

static inline float sta_bits_to_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline uint32_t sta_float_to_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static inline float sta_bfloat16_to_float(uint16_t bits) { return sta_bits_to_float((uint32_t)bits << 16); }

static inline uint16_t sta_float_to_bfloat16(float value) {
    uint32_t bits = sta_float_to_bits(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static inline float sta_half_to_float(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1Fu;
    uint32_t mantissa = half & 0x3FFu;
    if (exponent == 0x1Fu) return sta_bits_to_float(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0) return sta_bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    /* Zero or subnormal: mantissa · 2^-24, exact in float. */
    float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
}

static inline uint16_t sta_float_to_half(float value) {
    uint32_t bits = sta_float_to_bits(value);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return sign | 0x7E00u | (uint16_t)((magnitude >> 13) & 0x3FFu);
    if (magnitude >= 0x477FF000u) return sign | 0x7C00u; /* Rounds to 65536 or more: infinity. */
    if (magnitude < 0x38800000u) {
        /* Below the smallest normal half (2^-14): a multiple of 2^-24, rounded to nearest even by the
           float addition (the sum's low bits are the half mantissa). */
        float shifted = sta_bits_to_float(magnitude) + 0.5f;
        return sign | (uint16_t)(sta_float_to_bits(shifted) - 0x3F000000u);
    }
    uint32_t rounded = magnitude + 0x0FFFu + ((magnitude >> 13) & 1u);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

/* ---- the portable implementation ---- */

/* The 8-lane helpers are always inlined, so the ABI of passing 32-byte vectors without AVX never applies. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpsabi"
#define NAME(x) sta_portable_##x
#define STA_FMA(a, b, c) ((a) * (b) + (c))
#define STA_HAS_F16C 0
#include "KernelBody.h"
#undef NAME
#undef STA_FMA
#undef STA_HAS_F16C
#pragma clang diagnostic pop

/* ---- the AVX2 + FMA + F16C implementation ---- */

#if STA_X86
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define NAME(x) sta_avx2_##x
#define STA_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define STA_HAS_F16C 1
#include "KernelBody.h"
#undef NAME
#undef STA_FMA
#undef STA_HAS_F16C
#pragma clang attribute pop
#endif

/* ---- dispatch ---- */

int32_t sta_cpu_best_level(void) {
    static int32_t best = -1;
    int32_t level = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (level < 0) {
        level = STA_CPU_LEVEL_PORTABLE;
#if STA_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            level = STA_CPU_LEVEL_AVX2;
        }
#endif
        const char *forced = getenv("STA_CPU_KERNELS");
        if (forced != NULL && strcmp(forced, "portable") == 0) level = STA_CPU_LEVEL_PORTABLE;
        __atomic_store_n(&best, level, __ATOMIC_RELAXED);
    }
    return level;
}

#if STA_X86
#define STA_DISPATCH(function, ...)                                                                            \
    do {                                                                                                       \
        if (level >= STA_CPU_LEVEL_AVX2 && sta_cpu_best_level() >= STA_CPU_LEVEL_AVX2)                       \
            return sta_avx2_##function(__VA_ARGS__);                                                           \
        return sta_portable_##function(__VA_ARGS__);                                                           \
    } while (0)
#else
#define STA_DISPATCH(function, ...) do { (void)level; return sta_portable_##function(__VA_ARGS__); } while (0)
#endif

void sta_cpu_product(int32_t level, ptrdiff_t rowGroups16, ptrdiff_t depth, const float *x, ptrdiff_t xStride, const float *y,
                     ptrdiff_t yStride, ptrdiff_t yColumnStride, ptrdiff_t columns, float *out,
                     ptrdiff_t outColumnStride, int32_t mode, const float *alpha) {
    STA_DISPATCH(product, rowGroups16, depth, x, xStride, y, yStride, yColumnStride, columns, out, outColumnStride,
                 mode, alpha);
}

void sta_cpu_online_softmax_step(int32_t level, float *scores, ptrdiff_t rowStride, ptrdiff_t keyCount, ptrdiff_t rowGroups8,
                                 float *runningMax, float *runningSum, float *alpha) {
    STA_DISPATCH(online_softmax_step, scores, rowStride, keyCount, rowGroups8, runningMax, runningSum, alpha);
}

void sta_cpu_backward_scores_by_column(int32_t level, float *scores, float *gradients, ptrdiff_t rowStride, ptrdiff_t columns,
                                       ptrdiff_t paddedLanes, const float *lse, const float *delta) {
    STA_DISPATCH(backward_scores_by_column, scores, gradients, rowStride, columns, paddedLanes, lse, delta);
}

void sta_cpu_backward_scores_by_lane(int32_t level, const float *scores, float *gradients, ptrdiff_t rowStride,
                                     ptrdiff_t columns, ptrdiff_t paddedLanes, const float *lse,
                                     const float *delta) {
    STA_DISPATCH(backward_scores_by_lane, scores, gradients, rowStride, columns, paddedLanes, lse, delta);
}

void sta_cpu_load_row(int32_t level, int32_t kind, const void *base, ptrdiff_t offset, ptrdiff_t count, float scale,
                      float *destination) {
    STA_DISPATCH(load_row, kind, base, offset, count, scale, destination);
}

void sta_cpu_store_row(int32_t level, int32_t kind, const float *source, ptrdiff_t count, void *base, ptrdiff_t offset) {
    STA_DISPATCH(store_row, kind, source, count, base, offset);
}

float sta_cpu_dot(int32_t level, const float *a, const float *b, ptrdiff_t count) { STA_DISPATCH(dot, a, b, count); }

float sta_cpu_fma_chains(int32_t level, ptrdiff_t iterations, float seed) { STA_DISPATCH(fma_chains, iterations, seed); }
