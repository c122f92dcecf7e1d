/*
 * The body of every micro-kernel, included once per implementation by Kernels.c with
 *   NAME(x)       the suffixed name of function x,
 *   STA_FMA(a, b, c)  a · b + c on 8-lane vectors (fused where the implementation has FMA),
 *   STA_HAS_F16C  1 where fp16 rows convert with F16C instructions.
 * Functions here are static; Kernels.c exports dispatchers.
 */

/* ---- 8-lane helpers ---- */

static inline __attribute__((always_inline)) sta_f8 NAME(load)(const float *p) {
    sta_f8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void NAME(store)(float *p, sta_f8 v) {
    __builtin_memcpy(p, &v, sizeof v);
}

static inline __attribute__((always_inline)) sta_f8 NAME(splat)(float s) {
    return (sta_f8){s, s, s, s, s, s, s, s};
}

/* Lane-wise a < b ? b : a (a NaN in a is kept, a NaN in b is ignored). */
static inline __attribute__((always_inline)) sta_f8 NAME(maximum)(sta_f8 a, sta_f8 b) {
    sta_i8 take = (sta_i8)(a < b);
    return (sta_f8)(((sta_i8)b & take) | ((sta_i8)a & ~take));
}

static inline __attribute__((always_inline)) float NAME(sum8)(sta_f8 v) {
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* 2^x for x ≤ 0, relative error below 2e-7; x below −127 (and −∞) gives exactly 0, NaN gives NaN.
 * n = round(x) by the 1.5 · 2^23 trick, f = x − n in [−0.5, 0.5], 2^f by its degree-6 Taylor polynomial
 * in f · ln 2, and n + 127 put into the exponent field. */
static inline __attribute__((always_inline)) sta_f8 NAME(exp2_nonpositive)(sta_f8 x) {
    const sta_f8 rounding = NAME(splat)(12582912.0f);
    sta_f8 clamped = NAME(maximum)(x, NAME(splat)(-127.0f));
    sta_f8 shifted = clamped + rounding;
    sta_f8 f = clamped - (shifted - rounding);
    sta_f8 p = NAME(splat)(1.5403530393381606e-4f);
    p = STA_FMA(p, f, NAME(splat)(1.3333558146428443e-3f));
    p = STA_FMA(p, f, NAME(splat)(9.618129107628477e-3f));
    p = STA_FMA(p, f, NAME(splat)(5.550410866482158e-2f));
    p = STA_FMA(p, f, NAME(splat)(0.2402265069591007f));
    p = STA_FMA(p, f, NAME(splat)(0.6931471805599453f));
    p = STA_FMA(p, f, NAME(splat)(1.0f));
    sta_i8 n = (sta_i8)shifted - 0x4B400000;
    sta_i8 power = (n + 127) << 23;
    return p * (sta_f8)power;
}

/* ---- the 16×6 register block ---- */

/* out[c][0..<16] = init + Σ_k x[k · xStride + 0..<16] · y[k · yStride + c · yColumnStride] for the six
 * columns firstColumn ... firstColumn + 5; columns past columnCount − 1 are clamped to the last one (they
 * recompute and store the same value, so tails need no other kernel). Twelve accumulators stay in
 * registers: per step two vector loads, six broadcasts, twelve FMAs. */
static inline __attribute__((always_inline)) void NAME(block16x6)(
    ptrdiff_t depth, const float *x, ptrdiff_t xStride, const float *y, ptrdiff_t yStride,
    ptrdiff_t yColumnStride, ptrdiff_t firstColumn, ptrdiff_t columnCount, float *out, ptrdiff_t outColumnStride,
    int32_t mode, sta_f8 low, sta_f8 high) {
    ptrdiff_t last = columnCount - 1;
    ptrdiff_t c0 = firstColumn;
    ptrdiff_t c1 = firstColumn + 1 < last ? firstColumn + 1 : last;
    ptrdiff_t c2 = firstColumn + 2 < last ? firstColumn + 2 : last;
    ptrdiff_t c3 = firstColumn + 3 < last ? firstColumn + 3 : last;
    ptrdiff_t c4 = firstColumn + 4 < last ? firstColumn + 4 : last;
    ptrdiff_t c5 = firstColumn + 5 < last ? firstColumn + 5 : last;
    ptrdiff_t y0 = c0 * yColumnStride, y1 = c1 * yColumnStride, y2 = c2 * yColumnStride;
    ptrdiff_t y3 = c3 * yColumnStride, y4 = c4 * yColumnStride, y5 = c5 * yColumnStride;
    float *o0 = out + c0 * outColumnStride, *o1 = out + c1 * outColumnStride, *o2 = out + c2 * outColumnStride;
    float *o3 = out + c3 * outColumnStride, *o4 = out + c4 * outColumnStride, *o5 = out + c5 * outColumnStride;

    sta_f8 zero = NAME(splat)(0.0f);
    sta_f8 a0 = zero, b0 = zero, a1 = zero, b1 = zero, a2 = zero, b2 = zero;
    sta_f8 a3 = zero, b3 = zero, a4 = zero, b4 = zero, a5 = zero, b5 = zero;
    if (mode != 0) {
        a0 = NAME(load)(o0) * low; b0 = NAME(load)(o0 + 8) * high;
        a1 = NAME(load)(o1) * low; b1 = NAME(load)(o1 + 8) * high;
        a2 = NAME(load)(o2) * low; b2 = NAME(load)(o2 + 8) * high;
        a3 = NAME(load)(o3) * low; b3 = NAME(load)(o3 + 8) * high;
        a4 = NAME(load)(o4) * low; b4 = NAME(load)(o4 + 8) * high;
        a5 = NAME(load)(o5) * low; b5 = NAME(load)(o5 + 8) * high;
    }
    const float *xp = x;
    const float *yp = y;
    for (ptrdiff_t k = 0; k < depth; k++) {
        sta_f8 xl = NAME(load)(xp);
        sta_f8 xh = NAME(load)(xp + 8);
        sta_f8 s = NAME(splat)(yp[y0]);
        a0 = STA_FMA(xl, s, a0); b0 = STA_FMA(xh, s, b0);
        s = NAME(splat)(yp[y1]);
        a1 = STA_FMA(xl, s, a1); b1 = STA_FMA(xh, s, b1);
        s = NAME(splat)(yp[y2]);
        a2 = STA_FMA(xl, s, a2); b2 = STA_FMA(xh, s, b2);
        s = NAME(splat)(yp[y3]);
        a3 = STA_FMA(xl, s, a3); b3 = STA_FMA(xh, s, b3);
        s = NAME(splat)(yp[y4]);
        a4 = STA_FMA(xl, s, a4); b4 = STA_FMA(xh, s, b4);
        s = NAME(splat)(yp[y5]);
        a5 = STA_FMA(xl, s, a5); b5 = STA_FMA(xh, s, b5);
        xp += xStride;
        yp += yStride;
    }
    /* In reverse, so that clamped duplicates are overwritten by the original column (all equal anyway). */
    NAME(store)(o5, a5); NAME(store)(o5 + 8, b5);
    NAME(store)(o4, a4); NAME(store)(o4 + 8, b4);
    NAME(store)(o3, a3); NAME(store)(o3 + 8, b3);
    NAME(store)(o2, a2); NAME(store)(o2 + 8, b2);
    NAME(store)(o1, a1); NAME(store)(o1 + 8, b1);
    NAME(store)(o0, a0); NAME(store)(o0 + 8, b0);
}

static void NAME(product)(ptrdiff_t rowGroups16, ptrdiff_t depth, const float *x, ptrdiff_t xStride,
                          const float *y, ptrdiff_t yStride, ptrdiff_t yColumnStride, ptrdiff_t columns,
                          float *out, ptrdiff_t outColumnStride, int32_t mode, const float *alpha) {
    if (columns <= 0) return;
    for (ptrdiff_t group = 0; group < rowGroups16; group++) {
        sta_f8 low = NAME(splat)(1.0f), high = low;
        if (mode == 2) {
            low = NAME(load)(alpha + group * 16);
            high = NAME(load)(alpha + group * 16 + 8);
        }
        for (ptrdiff_t column = 0; column < columns; column += 6) {
            NAME(block16x6)(depth, x + group * 16, xStride, y, yStride, yColumnStride, column, columns,
                            out + group * 16, outColumnStride, mode, low, high);
        }
    }
}

/* ---- softmax ---- */

static void NAME(online_softmax_step)(float *scores, ptrdiff_t rowStride, ptrdiff_t keyCount, ptrdiff_t rowGroups8,
                                      float *runningMax, float *runningSum, float *alpha) {
    for (ptrdiff_t group = 0; group < rowGroups8; group++) {
        float *column = scores + group * 8;
        sta_f8 chunkMax = NAME(splat)(-__builtin_inff());
        float *s = column;
        for (ptrdiff_t j = 0; j < keyCount; j++) {
            chunkMax = NAME(maximum)(chunkMax, NAME(load)(s));
            s += rowStride;
        }
        sta_f8 oldMax = NAME(load)(runningMax + group * 8);
        sta_f8 newMax = NAME(maximum)(oldMax, chunkMax);
        sta_f8 factor = NAME(exp2_nonpositive)(oldMax - newMax);
        sta_f8 sum0 = NAME(splat)(0.0f), sum1 = sum0;
        s = column;
        ptrdiff_t j = 0;
        for (; j + 2 <= keyCount; j += 2) {
            sta_f8 p0 = NAME(exp2_nonpositive)(NAME(load)(s) - newMax);
            sta_f8 p1 = NAME(exp2_nonpositive)(NAME(load)(s + rowStride) - newMax);
            NAME(store)(s, p0);
            NAME(store)(s + rowStride, p1);
            sum0 += p0;
            sum1 += p1;
            s += 2 * rowStride;
        }
        if (j < keyCount) {
            sta_f8 p0 = NAME(exp2_nonpositive)(NAME(load)(s) - newMax);
            NAME(store)(s, p0);
            sum0 += p0;
        }
        NAME(store)(runningMax + group * 8, newMax);
        NAME(store)(runningSum + group * 8, NAME(load)(runningSum + group * 8) * factor + (sum0 + sum1));
        NAME(store)(alpha + group * 8, factor);
    }
}

static void NAME(backward_scores_by_column)(float *scores, float *gradients, ptrdiff_t rowStride, ptrdiff_t columns,
                                            ptrdiff_t paddedLanes, const float *lse, const float *delta) {
    for (ptrdiff_t j = 0; j < columns; j++) {
        sta_f8 l = NAME(splat)(lse[j]), d = NAME(splat)(delta[j]);
        float *s = scores + j * rowStride, *g = gradients + j * rowStride;
        for (ptrdiff_t lane = 0; lane < paddedLanes; lane += 8) {
            sta_f8 p = NAME(exp2_nonpositive)(NAME(load)(s + lane) - l);
            NAME(store)(s + lane, p);
            NAME(store)(g + lane, p * (NAME(load)(g + lane) - d));
        }
    }
}

static void NAME(backward_scores_by_lane)(const float *scores, float *gradients, ptrdiff_t rowStride,
                                          ptrdiff_t columns, ptrdiff_t paddedLanes, const float *lse,
                                          const float *delta) {
    for (ptrdiff_t lane = 0; lane < paddedLanes; lane += 8) {
        sta_f8 l = NAME(load)(lse + lane), d = NAME(load)(delta + lane);
        const float *s = scores + lane;
        float *g = gradients + lane;
        for (ptrdiff_t j = 0; j < columns; j++) {
            NAME(store)(g, NAME(exp2_nonpositive)(NAME(load)(s) - l) * (NAME(load)(g) - d));
            s += rowStride;
            g += rowStride;
        }
    }
}

/* ---- rows of storage ---- */

static void NAME(load_row)(int32_t kind, const void *base, ptrdiff_t offset, ptrdiff_t count, float scale,
                           float *destination) {
    sta_f8 factor = NAME(splat)(scale);
    ptrdiff_t i = 0;
    if (kind == STA_CPU_FLOAT32) {
        const float *source = (const float *)base + offset;
        for (; i + 8 <= count; i += 8) NAME(store)(destination + i, NAME(load)(source + i) * factor);
        for (; i < count; i++) destination[i] = source[i] * scale;
    } else if (kind == STA_CPU_FLOAT16) {
        const uint16_t *source = (const uint16_t *)base + offset;
#if STA_HAS_F16C
        for (; i + 8 <= count; i += 8) {
            __m128i half = _mm_loadu_si128((const __m128i *)(source + i));
            NAME(store)(destination + i, (sta_f8)_mm256_cvtph_ps(half) * factor);
        }
#endif
        for (; i < count; i++) destination[i] = sta_half_to_float(source[i]) * scale;
    } else {
        const uint16_t *source = (const uint16_t *)base + offset;
        for (; i + 8 <= count; i += 8) {
            sta_u16x8 bits;
            __builtin_memcpy(&bits, source + i, sizeof bits);
            sta_i8 wide = __builtin_convertvector(bits, sta_i8) << 16;
            NAME(store)(destination + i, (sta_f8)wide * factor);
        }
        for (; i < count; i++) destination[i] = sta_bfloat16_to_float(source[i]) * scale;
    }
}

static void NAME(store_row)(int32_t kind, const float *source, ptrdiff_t count, void *base, ptrdiff_t offset) {
    ptrdiff_t i = 0;
    if (kind == STA_CPU_FLOAT32) {
        __builtin_memcpy((float *)base + offset, source, (size_t)count * sizeof(float));
    } else if (kind == STA_CPU_FLOAT16) {
        uint16_t *destination = (uint16_t *)base + offset;
#if STA_HAS_F16C
        for (; i + 8 <= count; i += 8) {
            __m128i half = _mm256_cvtps_ph((__m256)NAME(load)(source + i), _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128((__m128i *)(destination + i), half);
        }
#endif
        for (; i < count; i++) destination[i] = sta_float_to_half(source[i]);
    } else {
        uint16_t *destination = (uint16_t *)base + offset;
        for (; i + 8 <= count; i += 8) {
            sta_i8 bits = (sta_i8)NAME(load)(source + i);
            sta_i8 magnitude = bits & 0x7FFFFFFF;
            sta_i8 isNaN = magnitude > 0x7F800000;
            /* Round to nearest even on the upper half (logical shifts through the unsigned view). */
            sta_u8 ubits = (sta_u8)bits;
            sta_u8 rounded = (ubits + (0x7FFFu + ((ubits >> 16) & 1u))) >> 16;
            sta_u8 quiet = (ubits >> 16) | 0x0040u;
            sta_u8 result = (sta_u8)(((sta_i8)quiet & isNaN) | ((sta_i8)rounded & ~isNaN));
            sta_u16x8 narrow = __builtin_convertvector(result, sta_u16x8);
            __builtin_memcpy(destination + i, &narrow, sizeof narrow);
        }
        for (; i < count; i++) destination[i] = sta_float_to_bfloat16(source[i]);
    }
}

static float NAME(dot)(const float *a, const float *b, ptrdiff_t count) {
    sta_f8 sum = NAME(splat)(0.0f);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) sum = STA_FMA(NAME(load)(a + i), NAME(load)(b + i), sum);
    float total = NAME(sum8)(sum);
    for (; i < count; i++) total += a[i] * b[i];
    return total;
}

static __attribute__((noinline)) float NAME(fma_chains)(ptrdiff_t iterations, float seed) {
    sta_f8 m = NAME(splat)(0.999999f), c = NAME(splat)(1e-7f), s = NAME(splat)(seed * 1e-3f);
    sta_f8 a0 = s, a1 = s + 1, a2 = s + 2, a3 = s + 3, a4 = s + 4, a5 = s + 5;
    sta_f8 a6 = s + 6, a7 = s + 7, a8 = s + 8, a9 = s + 9, a10 = s + 10, a11 = s + 11;
    for (ptrdiff_t i = 0; i < iterations; i++) {
        a0 = STA_FMA(a0, m, c); a1 = STA_FMA(a1, m, c); a2 = STA_FMA(a2, m, c);
        a3 = STA_FMA(a3, m, c); a4 = STA_FMA(a4, m, c); a5 = STA_FMA(a5, m, c);
        a6 = STA_FMA(a6, m, c); a7 = STA_FMA(a7, m, c); a8 = STA_FMA(a8, m, c);
        a9 = STA_FMA(a9, m, c); a10 = STA_FMA(a10, m, c); a11 = STA_FMA(a11, m, c);
    }
    return NAME(sum8)(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)));
}
