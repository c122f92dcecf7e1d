/*
 * sta.h — the C interface of SlidingTileAttention (libsta_c.so).
 *
 * Sliding Tile Attention over a video (or image) canvas cut into tiles, with optional text tokens after
 * the video tokens (HunyuanVideo-style joint attention). The semantics are those of the project's
 * specification (docs, spec §2–3):
 *
 *   - The sequence a kernel reads is in *tile order*: video tokens tile by tile (tiles row-major over the
 *     tile grid, tokens row-major inside a tile), holes (padding of a canvas axis that the tile does not
 *     divide) included, then the text tokens. Its length is sta_plan_shape(...).sequence_length.
 *   - A model's tensors are usually in *raster order*: video tokens row-major over the canvas (no holes),
 *     then text. sta_tile / sta_untile convert between the two.
 *   - q, k, v and out are [batch, heads, sequence_length, head_dim] contiguous (heads = the plan's head
 *     count); lse is [batch, heads, sequence_length] float32, natural log. Rows that attend nothing
 *     (holes, padding text) come back as output 0 and lse -inf.
 *
 * Conventions of every function:
 *   - The return value is STA_OK (0) on success, a positive STA_ERROR_* code otherwise (sta_plan_create
 *     returns NULL instead). On failure a NUL-terminated message saying what was wrong and what is
 *     allowed is written to `error` (at most error_len bytes, truncated); `error` may be NULL. Nothing is
 *     written to the outputs of a call that fails its checks.
 *   - Plan handles are checked against the set of live handles: a NULL, foreign or destroyed handle is
 *     an error, not a crash. A plan may be used from several threads at once.
 *   - Sizes are int64_t and must be non-negative; products are checked for overflow.
 */
#ifndef STA_C_INTERFACE_H
#define STA_C_INTERFACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum {
    STA_OK = 0,
    /* A NULL pointer, an unknown dtype or kernel name, a size or shape outside its range. */
    STA_ERROR_INVALID_ARGUMENT = 1,
    /* The canvas, tile, text or windows do not form a valid layout or plan. */
    STA_ERROR_GEOMETRY = 2,
    /* The plan handle is NULL, was never created here, or was destroyed. */
    STA_ERROR_INVALID_HANDLE = 3,
    /* The CPU kernel rejected the call. */
    STA_ERROR_CPU = 4,
    /* No CUDA driver/device/NVRTC, a compile failure, or the CUDA kernel rejected the call. */
    STA_ERROR_CUDA = 5,
};

/* Storage dtypes of q, k, v and out. */
enum {
    STA_DTYPE_FLOAT32 = 0, /* CPU only */
    STA_DTYPE_FLOAT16 = 1,
    STA_DTYPE_BFLOAT16 = 2,
};

/* The version of this interface (bumped when a signature changes). */
#define STA_C_INTERFACE_VERSION 1
int32_t sta_interface_version(void);

/* An attention plan: layout (canvas, tile, text) and one window per head. Opaque. */
typedef struct sta_plan sta_plan;

/*
 * Creates a plan. canvas[rank] and tile[rank] are in tokens (rank 1, 2 or 3: (T,H,W), (H,W) or (L));
 * text_count text tokens follow the video tokens, of which the first text_valid are real (text_valid < 0
 * means all). windows[heads * rank] holds each head's window in *tiles*, head-major (a size at least the
 * axis' tile count means the whole axis; smaller sizes must be odd). Returns NULL on failure.
 * Cost: about a millisecond for the largest layouts.
 */
sta_plan *sta_plan_create(int32_t rank, const int64_t *canvas, const int64_t *tile, int64_t text_count,
                          int64_t text_valid, int64_t heads, const int64_t *windows, char *error,
                          size_t error_len);

/* Releases a plan and the CUDA kernels compiled for it. NULL is a no-op that returns STA_OK. */
int32_t sta_plan_destroy(sta_plan *plan, char *error, size_t error_len);

/* The plan's sequence length S (padded video tokens + text tokens): the S of q, k, v, out and lse. */
int32_t sta_plan_sequence_length(const sta_plan *plan, int64_t *sequence_length, char *error,
                                 size_t error_len);

/*
 * The plan's sizes; any output pointer may be NULL. raster_length = video_tokens + text_count is the
 * token count of a raster-order tensor; sequence_length = padded_video_tokens + text_count.
 */
int32_t sta_plan_shape(const sta_plan *plan, int64_t *heads, int64_t *video_tokens,
                       int64_t *padded_video_tokens, int64_t *text_count, int64_t *text_valid,
                       int64_t *raster_length, int64_t *sequence_length, char *error, size_t error_len);

/* Mean over heads of the fraction of video-video pairs of real tokens skipped (spec §2). */
int32_t sta_plan_video_sparsity(const sta_plan *plan, double *sparsity, char *error, size_t error_len);

/* Effective FLOPs of one forward pass (spec §3): 4 * head_dim * batch * attended real pairs. */
int32_t sta_plan_effective_flops(const sta_plan *plan, int64_t batch, int64_t head_dim, double *flops,
                                 char *error, size_t error_len);

/*
 * For every video token in raster order (video_tokens entries), its index in the tile-order sequence.
 * `count` must equal video_tokens. Text token i has raster index video_tokens + i and sequence index
 * padded_video_tokens + i. Used to permute device tensors with one scatter (tile) or gather (untile).
 */
int32_t sta_plan_sequence_index(const sta_plan *plan, int64_t *indices, int64_t count, char *error,
                                size_t error_len);

/*
 * Raster order to tile order, byte-generic: src is [outer, raster_length, inner_bytes], dst is
 * [outer, sequence_length, inner_bytes], both contiguous host memory that must not overlap. Holes are
 * filled with zero bytes. [B, H, S, D] is outer = B*H, inner_bytes = D*itemsize; [B, S, H, D] is outer
 * = B, inner_bytes = H*D*itemsize. Cost: one pass of memcpy over dst, on several threads when large.
 */
int32_t sta_tile(const sta_plan *plan, const void *src, void *dst, int64_t outer, int64_t inner_bytes,
                 char *error, size_t error_len);

/* The exact inverse of sta_tile: src [outer, sequence_length, inner_bytes] to dst [outer, raster_length,
 * inner_bytes]; holes are dropped. */
int32_t sta_untile(const sta_plan *plan, const void *src, void *dst, int64_t outer, int64_t inner_bytes,
                   char *error, size_t error_len);

/*
 * Attention on the CPU (host pointers). dtype: STA_DTYPE_FLOAT32, _FLOAT16 or _BFLOAT16. scale 0 means
 * 1/sqrt(head_dim); otherwise it must be positive and finite. threads 0 means every online core.
 * Elements must be aligned to their size. Blocks until done.
 */
int32_t sta_forward_cpu(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim,
                        const void *q, const void *k, const void *v, void *out, float *lse, double scale,
                        int32_t threads, char *error, size_t error_len);

/*
 * Attention on a CUDA GPU, on memory owned by the caller (e.g. PyTorch) in device `device`'s primary
 * context. q, k, v, out, lse are device addresses (CUdeviceptr); q, k, v, out 16-byte aligned, lse
 * 4-byte aligned. dtype: STA_DTYPE_FLOAT16 or STA_DTYPE_BFLOAT16; head_dim 64 or 128. stream is a
 * CUstream / cudaStream_t of that context, or 0 for the legacy default stream. kernel: "auto" (the
 * Hopper kernel on compute capability 9.x, else the portable one), "portable" (sm_80+) or "hopper"
 * (sm_90); NULL means "auto". The kernel for (dtype, head_dim, kernel, device) is compiled by NVRTC on
 * first use (or read from the on-disk kernel cache) and kept in the plan. Returns once the work is
 * queued; the caller keeps the memory alive until the stream reaches it.
 */
int32_t sta_forward_cuda(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim, uint64_t q,
                         uint64_t k, uint64_t v, uint64_t out, uint64_t lse, double scale, uint64_t stream,
                         int32_t device, const char *kernel, char *error, size_t error_len);

#ifdef __cplusplus
}
#endif

#endif /* STA_C_INTERFACE_H */
