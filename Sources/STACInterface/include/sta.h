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
 *   - One rule for every backend: batch in 1...65535, head_dim in 1...65536; scale 0 means
 *     1/sqrt(head_dim), any other value must be positive and finite.
 *   - Which kernel runs a call is decided in one place (see sta_kernel_choice); a call no kernel can run
 *     fails with a message naming each kernel tried and why it cannot run the call. Checks that need no
 *     device (dtype, head dim, pointers, alignment, scale) come before any device is touched.
 *   - Per-row valid text lengths (text_valid): NULL / 0 means the plan's text_valid for every batch row;
 *     otherwise int32[batch], entry b in 0...text_count the number of real text tokens of row b. Text
 *     positions at or past it are padding: their rows get output 0 and lse -inf (gradient 0), and no
 *     query of that row attends them. Host arrays are checked; device arrays cannot be checked without a
 *     synchronisation (the kernels clamp their entries into range).
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

/* The version of this interface (bumped when a signature changes). Version 2 added text_valid to the
 * forward calls, the backward calls, sta_kernel_choice and sta_version. */
#define STA_C_INTERFACE_VERSION 2
int32_t sta_interface_version(void);

/* The library's version string ("0.3.0"): the same as the Swift package's (`sta --version`) and the Python
 * wheel's (sta.__version__). Static storage; never NULL. */
const char *sta_version(void);

/* Kernel directions (sta_kernel_choice). */
enum {
    STA_DIRECTION_FORWARD = 0,
    STA_DIRECTION_BACKWARD = 1,
};

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

/* Releases a plan. NULL is a no-op that returns STA_OK. CUDA kernels compiled for it stay loaded in the
 * library's engine (keyed by device, layout, windows, head dim, dtype and kernel), so a plan created
 * again with the same geometry reuses them. */
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
 * Attention on the CPU (host pointers). dtype: STA_DTYPE_FLOAT32, _FLOAT16 or _BFLOAT16. q, k, v, out
 * [batch, heads, S, head_dim] of dtype, lse [batch, heads, S] float; elements aligned to their size.
 * scale 0 means 1/sqrt(head_dim); otherwise it must be positive and finite. text_valid: NULL, or a host
 * int32[batch] of per-row valid text lengths (0...text_count). threads 0 means every online core.
 * Blocks until done. Cost: the plan's effective FLOPs over the threads.
 */
int32_t sta_forward_cpu(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim,
                        const void *q, const void *k, const void *v, void *out, float *lse, double scale,
                        const int32_t *text_valid, int32_t threads, char *error, size_t error_len);

/*
 * Attention on a CUDA GPU, on memory owned by the caller (e.g. PyTorch) in device `device`'s primary
 * context (the one the CUDA runtime uses). q, k, v, out, lse are device addresses (CUdeviceptr); q, k, v,
 * out 16-byte aligned, lse 4-byte aligned. dtype: STA_DTYPE_FLOAT16 or STA_DTYPE_BFLOAT16; head_dim 64 or
 * 128. text_valid: 0, or a device address of int32[batch] in the same context (4-byte aligned; its values
 * are not checked on the host). stream is a CUstream / cudaStream_t of that context, or 0 for the legacy
 * default stream. kernel: "auto" (the Hopper kernel on compute capability 9.x when it can run the call,
 * else the portable one), "portable" (sm_80+) or "hopper" (sm_90); NULL means "auto". The kernel for
 * (device, geometry, head_dim, dtype, kernel) is compiled by NVRTC on first use (or read from the on-disk
 * kernel cache) and kept. Returns once the work is queued; the caller keeps the memory alive until the
 * stream reaches it.
 */
int32_t sta_forward_cuda(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim, uint64_t q,
                         uint64_t k, uint64_t v, uint64_t out, uint64_t lse, double scale,
                         uint64_t text_valid, uint64_t stream, int32_t device, const char *kernel,
                         char *error, size_t error_len);

/*
 * Gradients on the CPU: dq, dk, dv in the input dtype ([batch, heads, S, head_dim] like q), fp32
 * accumulation inside, rounded once. out and lse are the forward's outputs for the same inputs (and the
 * same scale and text_valid), dout the gradient of the loss with respect to out. Rows that attend
 * nothing get dq = 0; keys nothing attends get dk = dv = 0. Other arguments as in sta_forward_cpu.
 * Blocks until done. Cost: about 3.5 x the forward's effective FLOPs.
 */
int32_t sta_backward_cpu(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim,
                         const void *q, const void *k, const void *v, const void *out, const float *lse,
                         const void *dout, void *dq, void *dk, void *dv, double scale,
                         const int32_t *text_valid, int32_t threads, char *error, size_t error_len);

/* Bytes of device scratch sta_backward_cuda needs for this call (0 is a valid answer), written to
 * *bytes. Checks the call and chooses its kernel as sta_backward_cuda would (opening the device). */
int32_t sta_backward_cuda_workspace_size(const sta_plan *plan, int32_t dtype, int64_t batch,
                                         int64_t head_dim, int32_t device, const char *kernel,
                                         int64_t *bytes, char *error, size_t error_len);

/*
 * Gradients on a CUDA GPU over caller-owned device memory: q, k, v, out, dout, dq, dk, dv in dtype
 * (16-byte aligned), lse float (4-byte aligned), as in sta_backward_cpu. workspace: a device address of at
 * least the queried bytes (256-byte aligned), or 0 when that is 0; workspace_bytes its size. Nothing else
 * may use the workspace until the stream has run the work; reuse it across calls on one stream (its size
 * depends on the kernel: query it with the same kernel argument). "auto" takes the Hopper kernels on sm_90
 * (dq summed by float32 atomics: not bit-reproducible between runs) and the portable ones elsewhere;
 * "portable" (sm_80+) is the deterministic path (the same bits on every run). Queued on `stream`; no
 * allocation per call. Other arguments as in sta_forward_cuda.
 */
int32_t sta_backward_cuda(const sta_plan *plan, int32_t dtype, int64_t batch, int64_t head_dim,
                          uint64_t q, uint64_t k, uint64_t v, uint64_t out, uint64_t lse, uint64_t dout,
                          uint64_t dq, uint64_t dk, uint64_t dv, double scale, uint64_t text_valid,
                          uint64_t workspace, int64_t workspace_bytes, uint64_t stream, int32_t device,
                          const char *kernel, char *error, size_t error_len);

/*
 * Which kernel a call would run, and why not when it cannot: writes the kernel's name ("cpu",
 * "portable", "hopper") to name (NUL-terminated, truncated to name_len). direction STA_DIRECTION_FORWARD
 * or STA_DIRECTION_BACKWARD. device -1 means the CPU (kernel NULL, "auto" or "cpu"); otherwise a CUDA
 * device ordinal, opened if needed. Judged for batch 1. Fails with the same status and message the
 * call itself would give.
 */
int32_t sta_kernel_choice(const sta_plan *plan, int32_t dtype, int64_t head_dim, int32_t direction,
                          int32_t device, const char *kernel, char *name, size_t name_len,
                          char *error, size_t error_len);

#ifdef __cplusplus
}
#endif

#endif /* STA_C_INTERFACE_H */
