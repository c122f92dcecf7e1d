"""The PyTorch custom operators of sliding tile attention, and the torch side of ``sta.attention``.

    torch.ops.sta.attention_forward(q, k, v, plan, scale, text_valid, kernel, threads) -> (out, lse)
    torch.ops.sta.attention_backward(q, k, v, out, lse, dout, plan, scale, text_valid, kernel, threads)
        -> (dq, dk, dv)

``plan`` is the plan's C handle (``Plan.handle.value``; the library checks it against its live plans, so a
closed plan is an error, not a crash), ``scale`` 0 means 1/sqrt(D), ``text_valid`` None or an int32 [B]
tensor on q's device, ``kernel`` "auto"/"portable"/"hopper" (CUDA), ``threads`` 0 for every core (CPU).
q, k, v, out, dout are [B, H, S, D] in tile order; lse is [B, H, S] float32.

Both are ``torch.library.custom_op``s with fake (meta) implementations, so ``torch.compile`` traces them
as single graph nodes without a graph break, and the forward has an autograd formula that calls the
backward op: gradients reach q, k and v (with the forward's kernel when it has a backward pass, else the
automatic choice; a library whose Hopper kernel is forward-only gets the portable backward). The Hopper
backward's dq is summed by float32 atomics (not bit-reproducible); ``sta.attention(...,
deterministic=True)`` runs the portable kernels. lse is marked non-differentiable (a loss that uses it gets no
gradient through it). The CUDA backward takes its scratch memory from PyTorch's caching allocator, sized
by ``sta_backward_cuda_workspace_size``; both ops run on the current stream and never synchronise.
Use ``sta.attention``: it checks its arguments and turns a plan and an int ``text_valid`` into these.
"""

import ctypes
import numbers
from typing import Optional

import torch

from . import _library
from .attention import call_forward_cpu, check_shapes, check_text_valid_int, require_text_valid_support

__all__ = ["attention", "attention_forward", "attention_backward"]

Tensor = torch.Tensor

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


# MARK: the public entry point's torch side


def attention(q, k, v, plan, scale: float, text_valid, kernel: str, threads, layout: str):
    """``sta.attention`` for torch tensors (arguments already checked by it, scale 0 = default)."""
    for name, tensor in zip("kv", (k, v)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError("q, k and v must all be numpy arrays or all torch tensors")
    if layout == "bshd":
        for name, tensor in zip("qkv", (q, k, v)):
            if tensor.dim() != 4:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected [B, S, H, D] (4 dimensions)")
        # Views; the operator copies them into [B, H, S, D] (the kernels' layout).
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    batch, head_dim, dtype = check_shapes(
        plan,
        [tuple(t.shape) for t in (q, k, v)],
        [_DTYPE_NAMES.get(t.dtype, str(t.dtype).replace("torch.", "")) for t in (q, k, v)],
        [(t.device.type, t.device.index) for t in (q, k, v)])
    if q.is_cuda:
        if dtype == "float32":
            raise TypeError("the CUDA kernels take bfloat16 or float16 tensors; convert q, k, v first")
        if head_dim not in (64, 128):
            raise ValueError(f"head dim {head_dim} is not supported by the CUDA kernels; allowed: 64, 128")
    valid = _text_valid_tensor(plan, batch, text_valid, q.device)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        if not _library.supports("backward"):
            raise RuntimeError(
                "sta.attention: q, k or v requires grad, but the loaded libsta_c "
                f"({_library.library_path()}, C interface {_library.interface_version()}) has no backward pass, "
                "so the output would carry no gradient. Rebuild the library from a checkout with C interface 2 "
                "(sta_backward_cpu / sta_backward_cuda), or call it under torch.no_grad() or on detached tensors")
    out, lse = torch.ops.sta.attention_forward(
        q, k, v, plan.handle.value, scale, valid, kernel, 0 if threads is None else int(threads))
    if not torch.compiler.is_compiling() and out.grad_fn is not None:
        # The backward finds the plan by its handle: keep the plan alive as long as the autograd graph, so a
        # plan made inline (sta.attention(q, k, v, sta.Plan(...))) is not released before the backward.
        out.grad_fn.metadata["sta_plan"] = plan
    if layout == "bshd":
        out = out.transpose(1, 2)
    return out, lse


def _text_valid_tensor(plan, batch, value, device) -> Optional[Tensor]:
    """None (the plan's lengths) or an int32 [batch] tensor on ``device``. No host synchronisation."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"text_valid is a {value.dtype} tensor; it must hold int32 (or int64) lengths")
        if tuple(value.shape) != (batch,):
            raise ValueError(
                f"text_valid has shape {tuple(value.shape)}; it must be [B] = ({batch},), one length per row")
        if value.device != device:
            raise ValueError(
                f"text_valid is on {value.device} but q is on {device}; put it on q's device "
                "(a CUDA kernel reads it there, without a host synchronisation)")
        require_text_valid_support()
        return value.to(torch.int32).contiguous()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        valid = check_text_valid_int(plan, int(value))
        if valid == plan.text_valid:
            return None
        require_text_valid_support()
        return torch.full((batch,), valid, dtype=torch.int32, device=device)
    if device.type == "cpu":
        import numpy as np

        array = np.asarray(value)
        if array.dtype.kind not in "iu":
            raise TypeError(f"text_valid is {value!r}; give None, an int, or a [B] integer tensor")
        return _text_valid_tensor(plan, batch, torch.from_numpy(np.array(array, dtype=np.int64)), device)
    raise TypeError(
        f"text_valid is a {type(value).__name__}; for CUDA inputs give None, an int, or a [B] int32 tensor on "
        "q's device")


# MARK: the operators


@torch.library.custom_op("sta::attention_forward", mutates_args=())
def attention_forward(q: Tensor, k: Tensor, v: Tensor, plan: int, scale: float, text_valid: Optional[Tensor],
                      kernel: str, threads: int) -> tuple[Tensor, Tensor]:
    q, k, v = (t.contiguous() for t in (q, k, v))
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device)
    handle = ctypes.c_void_p(plan)
    batch, head_dim = q.shape[0], q.shape[3]
    code = _library.DTYPE_CODES[_DTYPE_NAMES[q.dtype]]
    if q.is_cuda:
        q, k, v = _aligned(q, k, v)
        with _CUDACall(q) as (device, stream):
            valid = _device_text_valid(text_valid, q)
            if _library.interface_version() >= 2:
                _library.call("sta_forward_cuda", handle, code, batch, head_dim, q.data_ptr(), k.data_ptr(),
                              v.data_ptr(), out.data_ptr(), lse.data_ptr(), scale, valid, stream, device,
                              kernel.encode())
            else:
                _library.call("sta_forward_cuda", handle, code, batch, head_dim, q.data_ptr(), k.data_ptr(),
                              v.data_ptr(), out.data_ptr(), lse.data_ptr(), scale, stream, device,
                              kernel.encode())
    else:
        valid = _host_text_valid(handle, text_valid, batch)
        call_forward_cpu(handle, code, batch, head_dim, [t.data_ptr() for t in (q, k, v, out)], lse.data_ptr(),
                         scale, None if valid is None else valid.data_ptr(), threads)
    return out, lse


@attention_forward.register_fake
def _attention_forward_fake(q, k, v, plan, scale, text_valid, kernel, threads):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("sta::attention_backward", mutates_args=())
def attention_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor, plan: int,
                       scale: float, text_valid: Optional[Tensor], kernel: str,
                       threads: int) -> tuple[Tensor, Tensor, Tensor]:
    if not _library.supports("backward"):
        raise RuntimeError(
            f"sta::attention_backward: {_library.library_path()} (C interface {_library.interface_version()}) "
            "has no backward pass; rebuild libsta_c from a checkout with C interface 2")
    q, k, v, out, lse, dout = (t.contiguous() for t in (q, k, v, out, lse, dout))
    if dout.dtype != q.dtype:
        dout = dout.to(q.dtype)
    dq, dk, dv = (torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))
    handle = ctypes.c_void_p(plan)
    batch, head_dim = q.shape[0], q.shape[3]
    code = _library.DTYPE_CODES[_DTYPE_NAMES[q.dtype]]
    if q.is_cuda:
        q, k, v, out, dout = _aligned(q, k, v, out, dout)
        with _CUDACall(q) as (device, stream):
            valid = _device_text_valid(text_valid, q)
            size = ctypes.c_int64()
            _library.call("sta_backward_cuda_workspace_size", handle, code, batch, head_dim, device,
                          kernel.encode(), ctypes.byref(size))
            # From the caching allocator (blocks are 512-byte aligned); freed back to this stream's pool,
            # so a later allocation on the stream reuses it only after this launch in stream order.
            workspace = torch.empty(size.value, dtype=torch.uint8, device=q.device) if size.value else None
            _library.call("sta_backward_cuda", handle, code, batch, head_dim, q.data_ptr(), k.data_ptr(),
                          v.data_ptr(), out.data_ptr(), lse.data_ptr(), dout.data_ptr(), dq.data_ptr(),
                          dk.data_ptr(), dv.data_ptr(), scale, valid,
                          0 if workspace is None else workspace.data_ptr(), size.value, stream, device,
                          kernel.encode())
    else:
        valid = _host_text_valid(handle, text_valid, batch)
        pointers = [ctypes.c_void_p(t.data_ptr()) for t in (q, k, v, out, lse, dout, dq, dk, dv)]
        _library.call("sta_backward_cpu", handle, code, batch, head_dim, *pointers, scale,
                      None if valid is None else ctypes.c_void_p(valid.data_ptr()), threads)
    return dq, dk, dv


@attention_backward.register_fake
def _attention_backward_fake(q, k, v, out, lse, dout, plan, scale, text_valid, kernel, threads):
    return q.new_empty(q.shape), q.new_empty(q.shape), q.new_empty(q.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, plan, scale, text_valid, kernel, threads = inputs
    out, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(q, k, v, out, lse, text_valid)
    ctx.plan, ctx.scale, ctx.kernel, ctx.threads = plan, scale, kernel, threads


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, text_valid = ctx.saved_tensors
    if dout is None:
        return None, None, None, None, None, None, None, None
    kernel = _backward_kernel(ctx.plan, q, ctx.kernel)
    dq, dk, dv = torch.ops.sta.attention_backward(
        q, k, v, out, lse, dout, ctx.plan, ctx.scale, text_valid, kernel, ctx.threads)
    needs = ctx.needs_input_grad
    return (dq if needs[0] else None, dk if needs[1] else None, dv if needs[2] else None,
            None, None, None, None, None)


attention_forward.register_autograd(_backward, setup_context=_setup_context)

_backward_kernels: dict = {}


def _backward_kernel(plan: int, q, kernel: str) -> str:
    """The kernel named for the forward runs the backward too when it has a backward pass; otherwise (a
    library whose Hopper kernel is forward-only) the automatic choice does. Asked once per (plan, dtype, D,
    device)."""
    if kernel == "auto" or q.device.type != "cuda" or not _library.supports("kernel_choice"):
        return kernel
    key = (plan, q.dtype, int(q.shape[-1]), q.device.index, kernel)
    choice = _backward_kernels.get(key)
    if choice is None:
        name = ctypes.create_string_buffer(32)
        buffer = _library.error_buffer()
        device = q.device.index if q.device.index is not None else torch.cuda.current_device()
        _library.prepare_nvrtc()
        status = _library.library().sta_kernel_choice(
            ctypes.c_void_p(plan), _library.DTYPE_CODES[_DTYPE_NAMES[q.dtype]], int(q.shape[-1]), 1, device,
            kernel.encode(), name, ctypes.sizeof(name), buffer, ctypes.sizeof(buffer))
        choice = kernel if status == _library.STA_OK else "auto"
        _backward_kernels[key] = choice
    return choice


# MARK: helpers of the operator bodies (real tensors only)


def _aligned(*tensors):
    """The kernels need 16-byte aligned rows (TMA, vector loads): a view at an odd offset is copied."""
    return tuple(t.clone() if t.data_ptr() % 16 else t for t in tensors)


class _CUDACall:
    """Makes q's device current for the call; yields (device index, current stream handle)."""

    def __init__(self, q):
        self.q = q

    def __enter__(self):
        _library.prepare_nvrtc()
        self.guard = torch.cuda.device(self.q.device)
        self.guard.__enter__()
        device = self.q.device.index if self.q.device.index is not None else torch.cuda.current_device()
        return device, torch.cuda.current_stream(self.q.device).cuda_stream

    def __exit__(self, *exc):
        return self.guard.__exit__(*exc)


def _device_text_valid(text_valid, q) -> int:
    if text_valid is None:
        return 0
    require_text_valid_support()
    if text_valid.device != q.device or text_valid.dtype != torch.int32 or not text_valid.is_contiguous():
        raise ValueError("text_valid must be a contiguous int32 tensor on q's device")
    return text_valid.data_ptr()


def _host_text_valid(handle, text_valid, batch):
    """The host int32 lengths, checked against the plan's text count (cheap: B values on the host)."""
    if text_valid is None:
        return None
    require_text_valid_support()
    if text_valid.device.type != "cpu" or text_valid.dtype != torch.int32 or tuple(text_valid.shape) != (batch,):
        raise ValueError(f"text_valid must be an int32 [{batch}] CPU tensor for CPU inputs")
    text_valid = text_valid.contiguous()
    text = ctypes.c_int64()
    _library.call("sta_plan_shape", handle, None, None, None, ctypes.byref(text), None, None, None)
    bad = [int(x) for x in text_valid.tolist() if not 0 <= x <= text.value]
    if bad:
        raise ValueError(
            f"text_valid holds {bad[:4]}; every value must lie in 0...{text.value} (the plan's text tokens)")
    return text_valid
