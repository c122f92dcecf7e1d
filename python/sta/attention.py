"""sta.attention: the forward pass on tensors in tile order."""

from __future__ import annotations

import ctypes

from . import _library
from ._arrays import describe, empty_like_shape, is_torch
from .plan import Plan

__all__ = ["attention"]

KERNELS = ("auto", "portable", "hopper")


def attention(q, k, v, plan: Plan, scale: float | None = None, *, kernel: str = "auto",
              threads: int | None = None):
    """Sliding tile attention O = softmax(scale * Q K^T + M) V under ``plan``; returns ``(out, lse)``.

    q, k, v: [B, H, S, D] in **tile order** (use ``plan.tile`` first), H = plan.heads,
    S = plan.sequence_length, all three of one dtype and device.
      * CUDA torch tensors: bfloat16 or float16, D = 64 or 128; runs on the tensors' device on
        ``torch.cuda.current_stream()`` and returns at once (stream-ordered, like any torch op).
        ``kernel`` picks "auto" (Hopper kernel on sm_90, else portable), "portable" or "hopper".
        The first call per (plan, dtype, D, kernel, device) compiles the kernel and uploads the plan's
        tables synchronously: make it before capturing a CUDA graph.
      * CPU (numpy arrays or CPU torch tensors): float32, float16 or bfloat16, any D; blocks, on
        ``threads`` cores (None: all).
    scale: None means 1/sqrt(D).
    Returns out [B, H, S, D] (same dtype/kind/device as q) and lse [B, H, S] float32 (natural log).
    Rows that attend nothing (holes, padding text) get out 0 and lse -inf. K and V must hold finite
    values at holes and padding text rows (``plan.tile`` writes zeros there).
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an sta.Plan, not {type(plan).__name__}")
    infos = [describe(t) for t in (q, k, v)]
    qi = infos[0]
    if len(qi.shape) != 4:
        raise ValueError(f"q has shape {qi.shape}; expected [B, H, S, D] (4 dimensions)")
    batch, heads, sequence, head_dim = qi.shape
    for name, tensor, info in zip("qkv", (q, k, v), infos):
        if is_torch(tensor) != is_torch(q):
            raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
        if info.shape != qi.shape:
            raise ValueError(f"{name} has shape {info.shape}; q has {qi.shape}; q, k and v must match")
        if info.dtype != qi.dtype:
            raise ValueError(f"{name} is {info.dtype}; q is {qi.dtype}; q, k and v must share a dtype")
        if info.is_cuda != qi.is_cuda or info.device_index != qi.device_index:
            raise ValueError("q, k and v must be on the same device")
    if heads != plan.heads:
        raise ValueError(f"q has {heads} heads (shape [B, H, S, D] = {qi.shape}); the plan has {plan.heads}")
    if sequence != plan.sequence_length:
        hint = ""
        if sequence == plan.raster_length:
            hint = " (this is the raster-order length: call plan.tile(x, dim=2) first)"
        raise ValueError(
            f"q has S = {sequence} tokens; the plan's tile-order sequence length is {plan.sequence_length}{hint}")
    if scale is None:
        scale_value = 0.0
    else:
        scale_value = float(scale)
        if not scale_value > 0 or scale_value == float("inf"):
            raise ValueError(f"scale is {scale}; it must be positive and finite (None means 1/sqrt(D))")
    if qi.dtype not in _library.DTYPE_CODES:
        raise TypeError(f"dtype {qi.dtype} is not supported; use float32 (CPU), float16 or bfloat16")
    dtype_code = _library.DTYPE_CODES[qi.dtype]

    if qi.is_cuda:
        return _cuda(q, k, v, plan, batch, head_dim, dtype_code, qi.dtype, scale_value, kernel)
    return _cpu(q, k, v, plan, batch, heads, sequence, head_dim, dtype_code, scale_value, threads)


def _cpu(q, k, v, plan, batch, heads, sequence, head_dim, dtype_code, scale, threads):
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads is {threads}; give a positive count or None for every core")
    q, k, v = (describe(t).contiguous() for t in (q, k, v))
    out = empty_like_shape(q, (batch, heads, sequence, head_dim))
    if is_torch(q):
        import torch

        lse = torch.empty((batch, heads, sequence), dtype=torch.float32)
    else:
        import numpy as np

        lse = np.empty((batch, heads, sequence), dtype=np.float32)
    pointers = [ctypes.c_void_p(describe(t).pointer) for t in (q, k, v, out, lse)]
    _library.call(
        "sta_forward_cpu", plan.handle, dtype_code, batch, head_dim, *pointers, scale, None,
        0 if threads is None else int(threads))
    return out, lse


def _cuda(q, k, v, plan, batch, head_dim, dtype_code, dtype_name, scale, kernel):
    import torch

    if kernel not in KERNELS:
        raise ValueError(f"kernel is {kernel!r}; allowed: {', '.join(KERNELS)}")
    if dtype_name == "float32":
        raise TypeError("the CUDA kernels take bfloat16 or float16 tensors; convert q, k, v first")
    if head_dim not in (64, 128):
        raise ValueError(f"head dim {head_dim} is not supported by the CUDA kernels; allowed: 64, 128")
    # Contiguous, and 16-byte aligned (TMA and vector loads); a view at an odd offset is copied.
    q, k, v = (t.contiguous() for t in (q, k, v))
    q, k, v = (t.clone() if t.data_ptr() % 16 else t for t in (q, k, v))
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)
    _library.prepare_nvrtc()
    device = q.device.index if q.device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(q.device).cuda_stream
    with torch.cuda.device(q.device):
        _library.call(
            "sta_forward_cuda", plan.handle, dtype_code, batch, head_dim,
            q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), lse.data_ptr(), scale, 0, stream,
            device, kernel.encode())
    return out, lse
