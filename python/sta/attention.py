"""sta.attention: sliding tile attention on tensors in tile order, forward and (through autograd) backward."""

from __future__ import annotations

import ctypes

from . import _library
from ._arrays import describe, empty_like_shape, is_torch
from .plan import Plan

__all__ = ["attention", "kernel_choice", "LAYOUTS", "KERNELS"]

KERNELS = ("auto", "portable", "hopper")
LAYOUTS = ("bhsd", "bshd")


def attention(q, k, v, plan: Plan, scale: float | None = None, *, text_valid=None, kernel: str = "auto",
              threads: int | None = None, layout: str = "bhsd", deterministic: bool = False):
    """Sliding tile attention O = softmax(scale * Q K^T + M) V under ``plan``; returns ``(out, lse)``.

    q, k, v: [B, H, S, D] in **tile order** (use ``plan.tile`` first), H = plan.heads,
    S = plan.sequence_length, all three of one dtype and device; with ``layout="bshd"`` they are
    [B, S, H, D] (diffusers' layout) instead, see below.
      * CUDA torch tensors: bfloat16 or float16, D = 64 or 128; runs on the tensors' device on
        ``torch.cuda.current_stream()`` and returns at once (stream-ordered, like any torch op).
        ``kernel`` picks "auto" (Hopper kernel on sm_90, else portable), "portable" or "hopper".
        The Hopper backward sums dq with float32 atomics, so its dq may differ in the last bits between
        runs; ``deterministic=True`` runs the portable kernels instead (forward and backward; the same
        bits on every run; ``kernel`` must then be "auto" or "portable"). CPU tensors are always
        deterministic.
        The first call per (plan, dtype, D, kernel, device) compiles the kernel and uploads the plan's
        tables synchronously: make it before capturing a CUDA graph.
      * CPU (numpy arrays or CPU torch tensors): float32, float16 or bfloat16, any D; blocks, on
        ``threads`` cores (None: all).
    scale: None means 1/sqrt(D).
    text_valid: the number of real (non-padding) text tokens of each batch row, overriding the plan's
      ``text_valid`` for this call: None (the plan's), an int (every row), or a [B] integer array — a torch
      tensor on q's device for torch inputs (read by the kernel on the device: no host synchronisation;
      values outside 0...plan.text are clamped there, while host values are checked), a numpy array or a
      sequence for numpy inputs. Needs a library of C interface 2. A new length never compiles a kernel.
    layout: "bhsd" (default) or "bshd". With "bshd", q, k, v are [B, S, H, D] and out comes back
      [B, S, H, D] as a transposed view of a [B, H, S, D] tensor; the kernels read [B, H, S, D]
      contiguous, so q, k and v are each copied once into that layout (3 * B*S*H*D elements of traffic
      each way, about what one extra elementwise op over q, k, v costs); the gradients take the same
      copies in reverse.
    Returns out (same dtype/kind/device as q) and lse [B, H, S] float32 (natural log). Rows that attend
    nothing (holes, padding text) get out 0 and lse -inf. K and V must hold finite values at holes and
    padding text rows (``plan.tile`` writes zeros there).

    Torch tensors run through the custom ops ``torch.ops.sta.attention_forward`` / ``attention_backward``
    (see ``sta.ops``): gradients flow to q, k and v (lse is not differentiable), and ``torch.compile``
    traces the call without a graph break. Where the loaded library has no backward pass (C interface 1),
    inputs that require grad raise an error instead of returning an output without a gradient.
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an sta.Plan, not {type(plan).__name__}")
    layout_name = layout.lower() if isinstance(layout, str) else layout
    if layout_name not in LAYOUTS:
        raise ValueError(f"layout is {layout!r}; allowed: 'bhsd' ([B, H, S, D]) or 'bshd' ([B, S, H, D])")
    if kernel not in KERNELS:
        raise ValueError(f"kernel is {kernel!r}; allowed: {', '.join(KERNELS)}")
    if deterministic:
        if kernel == "hopper":
            raise ValueError(
                "deterministic=True needs the portable kernels (the Hopper backward sums dq with float32 "
                "atomics); give kernel='auto' or 'portable', or deterministic=False")
        if is_torch(q) and q.is_cuda:
            kernel = "portable"
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads is {threads}; give a positive count or None for every core")
    if scale is None:
        scale_value = 0.0
    else:
        scale_value = float(scale)
        if not scale_value > 0 or scale_value == float("inf"):
            raise ValueError(f"scale is {scale}; it must be positive and finite (None means 1/sqrt(D))")
    if is_torch(q):
        from . import ops

        return ops.attention(q, k, v, plan, scale_value, text_valid, kernel, threads, layout_name)
    if layout_name == "bshd":
        for name, tensor in zip("qkv", (q, k, v)):
            if is_torch(tensor):
                raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
            if len(describe(tensor).shape) != 4:
                raise ValueError(f"{name} has shape {describe(tensor).shape}; expected [B, S, H, D] (4 dimensions)")
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    out, lse = _numpy(q, k, v, plan, scale_value, text_valid, threads)
    if layout_name == "bshd":
        out = out.transpose(0, 2, 1, 3)
    return out, lse


def check_shapes(plan: Plan, shapes, dtypes, placements):
    """Shared checks of q, k, v given their shapes, dtype names and (is_cuda, device index) pairs; returns
    (batch, head_dim, dtype name). Reads metadata only (safe inside torch.compile)."""
    q_shape = shapes[0]
    if len(q_shape) != 4:
        raise ValueError(f"q has shape {q_shape}; expected [B, H, S, D] (4 dimensions)")
    batch, heads, sequence, head_dim = q_shape
    for name, shape, dtype, placement in zip("qkv", shapes, dtypes, placements):
        if shape != q_shape:
            raise ValueError(f"{name} has shape {shape}; q has {q_shape}; q, k and v must match")
        if dtype != dtypes[0]:
            raise ValueError(f"{name} is {dtype}; q is {dtypes[0]}; q, k and v must share a dtype")
        if placement != placements[0]:
            raise ValueError("q, k and v must be on the same device")
    if heads != plan.heads:
        raise ValueError(f"q has {heads} heads (shape [B, H, S, D] = {q_shape}); the plan has {plan.heads}")
    if sequence != plan.sequence_length:
        hint = ""
        if sequence == plan.raster_length:
            hint = " (this is the raster-order length: call plan.tile(x, dim=2) first)"
        raise ValueError(
            f"q has S = {sequence} tokens; the plan's tile-order sequence length is {plan.sequence_length}{hint}")
    if dtypes[0] not in _library.DTYPE_CODES:
        raise TypeError(f"dtype {dtypes[0]} is not supported; use float32 (CPU), float16 or bfloat16")
    if head_dim < 1:
        raise ValueError(f"q has head dim {head_dim}; it must be positive")
    return batch, head_dim, dtypes[0]


def check_text_valid_int(plan: Plan, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"text_valid is {value!r}; give None, an int, or a [B] integer array")
    if not 0 <= value <= plan.text:
        raise ValueError(f"text_valid is {value}; it must lie in 0...{plan.text} (the plan's text tokens)")
    return value


def require_text_valid_support() -> None:
    if not _library.supports("text_valid"):
        raise RuntimeError(
            "per-call text_valid needs a libsta_c with per-row text lengths (C interface 2); "
            f"{_library.library_path()} (C interface {_library.interface_version()}) does not offer them. Rebuild "
            "the library, or use a plan whose text_valid is the length you need")


def host_text_valid(plan: Plan, batch: int, value):
    """text_valid for a host call: None (the plan's) or a contiguous numpy int32 [batch], checked."""
    import numpy as np

    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        valid = check_text_valid_int(plan, int(value))
        if valid == plan.text_valid:
            return None
        require_text_valid_support()
        return np.full(batch, valid, dtype=np.int32)
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"text_valid has dtype {array.dtype}; it must hold integers (int32 or int64)")
    if array.shape != (batch,):
        raise ValueError(f"text_valid has shape {array.shape}; it must be [B] = ({batch},), one length per row")
    if batch and (array.min() < 0 or array.max() > plan.text):
        bad = [int(x) for x in array if not 0 <= x <= plan.text]
        raise ValueError(
            f"text_valid holds {bad[:4]}; every value must lie in 0...{plan.text} (the plan's text tokens)")
    require_text_valid_support()
    return np.ascontiguousarray(array, dtype=np.int32)


def _numpy(q, k, v, plan, scale, text_valid, threads):
    import numpy as np

    infos = [describe(t) for t in (q, k, v)]
    for t in (k, v):
        if is_torch(t):
            raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
    batch, head_dim, dtype = check_shapes(
        plan, [i.shape for i in infos], [i.dtype for i in infos], [(False, -1)] * 3)
    valid = host_text_valid(plan, batch, text_valid)
    q, k, v = (np.ascontiguousarray(t) for t in (q, k, v))
    out = empty_like_shape(q, q.shape)
    lse = np.empty(q.shape[:3], dtype=np.float32)
    call_forward_cpu(plan.handle, _library.DTYPE_CODES[dtype], batch, head_dim,
                     [describe(t).pointer for t in (q, k, v, out)], lse.ctypes.data,
                     scale, None if valid is None else valid.ctypes.data, threads)
    return out, lse


def call_forward_cpu(handle, dtype_code, batch, head_dim, pointers, lse_pointer, scale, text_valid_pointer,
                     threads):
    """sta_forward_cpu in either interface version (host addresses as ints)."""
    q, k, v, out = (ctypes.c_void_p(p) for p in pointers)
    thread_count = 0 if threads is None else int(threads)
    if text_valid_pointer is not None:
        require_text_valid_support()
    if _library.interface_version() >= 2:
        _library.call("sta_forward_cpu", handle, dtype_code, batch, head_dim, q, k, v, out,
                      ctypes.c_void_p(lse_pointer), scale, ctypes.c_void_p(text_valid_pointer), thread_count)
    else:
        _library.call("sta_forward_cpu", handle, dtype_code, batch, head_dim, q, k, v, out,
                      ctypes.c_void_p(lse_pointer), scale, thread_count)


def kernel_choice(plan: Plan, dtype, head_dim: int, *, backward: bool = False, device=None,
                  kernel: str = "auto") -> str:
    """The kernel a call would run: "cpu", "portable" or "hopper" (C interface 2).

    dtype: "float32"/"float16"/"bfloat16" or a torch/numpy dtype; device: None or "cpu" for the CPU, an
    int or a torch CUDA device otherwise. Raises STAError with the message the call itself would give
    when no kernel serves it (e.g. "hopper" on an sm_80 GPU, D = 96 on the GPU).
    """
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be an sta.Plan, not {type(plan).__name__}")
    _library.library()
    if not _library.supports("kernel_choice"):
        raise RuntimeError(
            f"kernel_choice needs libsta_c of C interface 2; {_library.library_path()} implements "
            f"version {_library.interface_version()}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel is {kernel!r}; allowed: {', '.join(KERNELS)}")
    name = str(dtype).replace("torch.", "")
    if name not in _library.DTYPE_CODES:
        raise TypeError(f"dtype {dtype} is not supported; use float32 (CPU), float16 or bfloat16")
    if device is None or device == "cpu":
        index = -1
    elif isinstance(device, int):
        index = device
    elif getattr(device, "type", None) == "cuda":
        index = device.index if device.index is not None else 0
    elif getattr(device, "type", None) == "cpu":
        index = -1
    else:
        raise ValueError(f"device is {device!r}; give None/'cpu' or a CUDA device (an int or torch.device)")
    if index >= 0:
        _library.prepare_nvrtc()
    buffer = ctypes.create_string_buffer(64)
    _library.call("sta_kernel_choice", plan.handle, _library.DTYPE_CODES[name], int(head_dim),
                  1 if backward else 0, index, kernel.encode(), buffer, ctypes.sizeof(buffer))
    return buffer.value.decode()
