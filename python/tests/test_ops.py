"""The torch custom operators (sta::attention_forward / sta::attention_backward): forward and gradients
against float64 autograd through the spec's explicit mask, gradcheck, per-row text lengths, padding and
hole rows, torch.compile(fullgraph=True), opcheck, argument errors, and the error that replaces a silent
detachment when the library has no backward. Skipped without torch; the CUDA tests skip without a GPU.

GPU machine: STA_LIBRARY=.build/release/libsta_c.so python3 -m pytest -q python/tests/test_ops.py
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

torch = pytest.importorskip("torch")

import sta  # noqa: E402
from sta import _library  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

import _masks  # noqa: E402

needs_backward = pytest.mark.skipif(
    not sta.supports("backward"), reason="the loaded libsta_c is C interface 1 (no backward pass)")
needs_text_valid = pytest.mark.skipif(
    not sta.supports("text_valid"), reason="the loaded libsta_c is C interface 1 (no per-row text lengths)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Spec §4's bounds, for outputs and for gradients alike (relative Frobenius error against float64). On
# the CPU kernel the gradients measure about 2e-7 (fp32), 3e-4 (fp16) and 2e-3 (bf16).
FORWARD_BOUND = {torch.float32: 1e-4, torch.float16: 3e-3, torch.bfloat16: 1e-2}
GRADIENT_BOUND = FORWARD_BOUND


def tiny_plan(text=3):
    # 3 x 4 canvas in 2 x 2 tiles (holes on axis 0), text after it, two heads with different windows.
    return sta.Plan(canvas=(3, 4), tile=(2, 2), text=text, windows=[(1, 1), (1, 3)])


def small_plan(text=8, text_valid=None):
    return sta.Plan(canvas=(3, 3, 5), tile=(2, 2, 4), text=text, text_valid=text_valid,
                    windows=[(1, 1, 1), (3, 1, 3)])


def gpu_plan():
    # Shapes the CUDA kernels take (their tiles hold 64 or 128 tokens; tile 4 x 4 x 8 = 128), holes on T.
    return sta.Plan(canvas=(6, 8, 16), tile=(4, 4, 8), text=40, windows=[(1, 1, 1), (1, 3, 1)])


def random_inputs(plan, batch=2, head_dim=8, dtype=torch.float32, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, plan.heads, plan.sequence_length, head_dim)
    return [torch.randn(shape, generator=generator).to(dtype).to(device) for _ in range(3)]


def rows_of(plan, text_valid, batch):
    if text_valid is None:
        return [plan.text_valid] * batch
    if isinstance(text_valid, int):
        return [text_valid] * batch
    return [int(x) for x in torch.as_tensor(text_valid).tolist()]


def relative_error(got, want, rows=None):
    got, want = got.double(), want.double()
    if rows is not None:
        got, want = got[rows], want[rows]
    assert not torch.isnan(got).any()
    return ((got - want).norm() / want.norm()).item()


def reference(plan, q, k, v, text_valid=None, scale=None):
    """float64 out, lse and the mask, differentiable in q, k, v (float64 leaves made here)."""
    rows = rows_of(plan, text_valid, q.shape[0])
    mask = torch.from_numpy(_masks.masks(plan, rows))
    scale = 1 / q.shape[-1] ** 0.5 if scale is None else scale
    leaves = [x.detach().double().requires_grad_() for x in (q, k, v)]
    out, lse = _masks.reference_torch(*leaves, mask, scale)
    return out, lse, mask, leaves


# MARK: forward


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_forward_matches_the_float64_reference(dtype):
    plan = small_plan(text_valid=5)
    q, k, v = random_inputs(plan, dtype=dtype)
    out, lse = sta.attention(q, k, v, plan)
    assert out.dtype == dtype and out.shape == q.shape and out.is_contiguous()
    assert lse.dtype == torch.float32 and lse.shape == q.shape[:3]
    want, want_lse, mask, _ = reference(plan, q, k, v)
    attends = mask.any(-1)
    assert relative_error(out, want.detach(), attends) < FORWARD_BOUND[dtype]
    assert (lse - want_lse.detach())[attends].abs().max() < 1e-3
    assert torch.all(out[~attends] == 0) and torch.all(torch.isneginf(lse[~attends]))


def test_forward_goes_through_the_custom_op():
    plan = small_plan()
    q, k, v = random_inputs(plan)
    direct = torch.ops.sta.attention_forward(q, k, v, plan.handle.value, 0.0, None, "auto", 0)
    out, lse = sta.attention(q, k, v, plan)
    assert torch.equal(direct[0], out) and torch.equal(direct[1], lse)


@needs_text_valid
@pytest.mark.parametrize("form", ["int32", "int64", "list", "int"])
def test_per_row_text_lengths(form):
    plan = small_plan()
    rows = [3, 8] if form != "int" else [5, 5]
    value = {"int32": torch.tensor(rows, dtype=torch.int32), "int64": torch.tensor(rows),
             "list": rows, "int": 5}[form]
    q, k, v = random_inputs(plan)
    for x in (k, v):  # large finite keys and values at each row's padding text
        for b, valid in enumerate(rows):
            x[b, :, plan.padded_video_tokens + valid:] = 3e4
    out, lse = sta.attention(q, k, v, plan, text_valid=value)
    want, want_lse, mask, _ = reference(plan, q, k, v, rows)
    attends = mask.any(-1)
    assert relative_error(out, want.detach(), attends) < 1e-4
    assert (lse - want_lse.detach())[attends].abs().max() < 1e-3
    assert torch.all(out[~attends] == 0) and torch.all(torch.isneginf(lse[~attends]))
    if form == "int32":
        # A length-77/256-style batch: row 0 padded, row 1 full; row 0's padding rows are empty.
        padding = slice(plan.padded_video_tokens + rows[0], None)
        assert torch.all(out[0, :, padding] == 0) and not torch.isneginf(lse[1, :, padding]).any()


def test_bad_text_valid_is_reported():
    plan = small_plan()
    q, k, v = random_inputs(plan)
    with pytest.raises(TypeError, match="float32 tensor"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([1, 2, 3], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([[1], [2]], dtype=torch.int32))
    with pytest.raises(ValueError, match="meta.*q's device"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([1, 2], dtype=torch.int32, device="meta"))
    with pytest.raises(ValueError, match=r"text_valid is 9; .*0\.\.\.8"):
        sta.attention(q, k, v, plan, text_valid=9)
    with pytest.raises(TypeError, match="text_valid"):
        sta.attention(q, k, v, plan, text_valid="3")


@needs_text_valid
def test_out_of_range_host_lengths_are_reported():
    plan = small_plan()
    q, k, v = random_inputs(plan)
    with pytest.raises(ValueError, match=r"\[9\].*0\.\.\.8"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([1, 9], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\[-2\]"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([-2, 1], dtype=torch.int32))


def test_other_bad_arguments_are_reported():
    plan = small_plan()
    q, k, v = random_inputs(plan)
    with pytest.raises(TypeError, match="all torch tensors"):
        sta.attention(q, k.numpy(), v, plan)
    with pytest.raises(ValueError, match="tile-order sequence length"):
        sta.attention(q[:, :, 1:], k[:, :, 1:], v[:, :, 1:], plan)
    with pytest.raises(TypeError, match="float64"):
        sta.attention(q.double(), k.double(), v.double(), plan)
    with pytest.raises(ValueError, match="4 dimensions"):
        sta.attention(q[0], k[0], v[0], plan, layout="bshd")


def test_layout_bshd_forward():
    plan = small_plan(text_valid=6)
    q, k, v = random_inputs(plan)
    out, lse = sta.attention(q, k, v, plan)
    swapped = [x.transpose(1, 2).contiguous() for x in (q, k, v)]
    out_bshd, lse_bshd = sta.attention(*swapped, plan, layout="bshd")
    assert out_bshd.shape == swapped[0].shape
    assert torch.equal(out_bshd, out.transpose(1, 2)) and torch.equal(lse_bshd, lse)


# MARK: no silent detachment


def test_requires_grad_without_a_backward_library_is_an_error(monkeypatch):
    plan = small_plan()
    q, k, v = random_inputs(plan)
    monkeypatch.setattr(_library, "_features", _library.FEATURES[1])  # a C interface 1 library
    for which in range(3):
        tensors = [q, k, v]
        tensors[which] = tensors[which].clone().requires_grad_()
        with pytest.raises(RuntimeError, match="requires grad.*no backward pass"):
            sta.attention(*tensors, plan)
    # Nothing to detach: no_grad, or inputs that need no gradient.
    with torch.no_grad():
        out, _ = sta.attention(q.clone().requires_grad_(), k, v, plan)
    assert not out.requires_grad
    out, _ = sta.attention(q, k, v, plan)
    assert out.shape == q.shape


# MARK: gradients


def loss_weights(out):
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)


@needs_backward
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rows", [None, [3, 8], [0, 5]])
def test_gradients_match_float64_autograd(dtype, rows):
    if rows is not None and not sta.supports("text_valid"):
        pytest.skip("no per-row text lengths")
    plan = small_plan(text_valid=6)
    q, k, v = (x.requires_grad_() for x in random_inputs(plan, dtype=dtype))
    text_valid = None if rows is None else torch.tensor(rows, dtype=torch.int32)
    out, lse = sta.attention(q, k, v, plan, text_valid=text_valid)
    assert out.requires_grad and not lse.requires_grad
    weights = loss_weights(out)
    (out * weights).sum().backward()
    want, _, mask, leaves = reference(plan, q, k, v, text_valid)
    (want * weights.double()).sum().backward()
    for name, tensor, leaf in zip("qkv", (q, k, v), leaves):
        assert tensor.grad.dtype == dtype and tensor.grad.shape == tensor.shape
        error = relative_error(tensor.grad, leaf.grad)
        assert error < GRADIENT_BOUND[dtype], f"d{name}: relative error {error}"


@needs_backward
@pytest.mark.parametrize("rows", [None, [3, 1]])
def test_gradcheck_float32(rows):
    """torch.autograd.gradcheck in float32 (the CPU kernel has no float64). Central differences with
    eps = 1e-3 of a float32 forward whose outputs are O(1) and carry ~1e-6 relative rounding give
    Jacobian entries with ~1e-6 / 1e-3 = 1e-3 noise; atol = rtol = 1e-2 leaves a tenfold margin, while a
    missing or misplaced term changes entries of order 0.1 - 1. One thread: a fixed summation order."""
    if rows is not None and not sta.supports("text_valid"):
        pytest.skip("no per-row text lengths")
    plan = tiny_plan()
    text_valid = None if rows is None else torch.tensor(rows, dtype=torch.int32)
    q, k, v = (x.requires_grad_() for x in random_inputs(plan, head_dim=4, seed=3))

    def function(q, k, v):
        return sta.attention(q, k, v, plan, text_valid=text_valid, threads=1)[0]

    assert torch.autograd.gradcheck(function, (q, k, v), eps=1e-3, atol=1e-2, rtol=1e-2, nondet_tol=1e-6)


@needs_backward
def test_padding_and_hole_gradients_are_zero():
    plan = small_plan()
    rows = [2, 8] if sta.supports("text_valid") else [8, 8]
    q, k, v = (x.requires_grad_() for x in random_inputs(plan))
    text_valid = torch.tensor(rows, dtype=torch.int32) if sta.supports("text_valid") else None
    out, _ = sta.attention(q, k, v, plan, text_valid=text_valid)
    (out * loss_weights(out)).sum().backward()
    _, real, _ = _masks.tile_order_positions(plan)
    holes = torch.from_numpy(np.flatnonzero(~real))
    assert len(holes) > 0
    for tensor in (q, k, v):
        assert torch.all(tensor.grad[:, :, holes] == 0)
        assert not torch.isnan(tensor.grad).any()
        for b, valid in enumerate(rows):
            assert torch.all(tensor.grad[b, :, plan.padded_video_tokens + valid:] == 0)
        assert tensor.grad.abs().sum() > 0


@needs_backward
def test_the_autograd_graph_keeps_its_plan_alive():
    import gc

    q, k, v = (x.requires_grad_() for x in random_inputs(small_plan()))
    out, _ = sta.attention(q, k, v, small_plan())   # the only reference to this plan is the graph's
    gc.collect()
    for _ in range(3):
        small_plan().close()                        # plans made and released meanwhile
    out.sum().backward()
    want, _, _, leaves = reference(small_plan(), q, k, v)
    want.sum().backward()
    assert relative_error(q.grad, leaves[0].grad) < 1e-4


@needs_backward
def test_backward_writes_every_entry_of_poisoned_gradients():
    """sta_backward_cpu through the C ABI into NaN-filled dq, dk, dv: every entry is written (holes and
    padding rows with 0)."""
    plan = small_plan(text_valid=3)
    q, k, v = random_inputs(plan)
    out, lse = sta.attention(q, k, v, plan)
    dout = loss_weights(out)
    grads = [torch.full_like(q, float("nan")) for _ in range(3)]
    pointers = [ctypes.c_void_p(t.data_ptr()) for t in (q, k, v, out, lse, dout, *grads)]
    _library.call("sta_backward_cpu", plan.handle, 0, 2, 8, *pointers, 0.0, None, 2)
    for grad in grads:
        assert not torch.isnan(grad).any()
    expected = torch.ops.sta.attention_backward(q, k, v, out, lse, dout, plan.handle.value, 0.0, None, "auto", 2)
    for grad, want in zip(grads, expected):
        assert torch.allclose(grad, want, rtol=0, atol=1e-6)


@needs_backward
def test_layout_bshd_gradients_equal_bhsd():
    plan = small_plan(text_valid=6)
    base = random_inputs(plan)
    bhsd = [x.clone().requires_grad_() for x in base]
    bshd = [x.transpose(1, 2).contiguous().requires_grad_() for x in base]
    out, _ = sta.attention(*bhsd, plan)
    out_bshd, _ = sta.attention(*bshd, plan, layout="bshd")
    weights = loss_weights(out)
    (out * weights).sum().backward()
    (out_bshd * weights.transpose(1, 2)).sum().backward()
    for a, b in zip(bhsd, bshd):
        assert torch.allclose(a.grad, b.grad.transpose(1, 2), rtol=0, atol=1e-6)


# MARK: torch.library / torch.compile


def test_opcheck_forward():
    plan = small_plan(text_valid=4)
    q, k, v = random_inputs(plan)
    grad = sta.supports("backward")
    args = [x.requires_grad_(grad) for x in (q, k, v)]
    valid = torch.tensor([2, 8], dtype=torch.int32) if sta.supports("text_valid") else None
    torch.library.opcheck(torch.ops.sta.attention_forward.default,
                          (*args, plan.handle.value, 0.0, valid, "auto", 0))


@needs_backward
def test_opcheck_backward():
    plan = small_plan(text_valid=4)
    q, k, v = random_inputs(plan)
    out, lse = sta.attention(q, k, v, plan)
    torch.library.opcheck(torch.ops.sta.attention_backward.default,
                          (q, k, v, out, lse, loss_weights(out), plan.handle.value, 0.0, None, "auto", 0))


class GraphRecorder:
    """A torch.compile backend that keeps the ops of every graph it is given and runs it as is."""

    def __init__(self):
        self.targets = []

    def __call__(self, graph_module, example_inputs):
        self.targets += [str(node.target) for node in graph_module.graph.nodes if node.op == "call_function"]
        return graph_module.forward


def block(q, k, v, plan, text_valid):
    """A small model step: projections around the attention, layout [B, S, H, D] like diffusers."""
    q, k, v = (torch.tanh(x) * 2 for x in (q, k, v))
    out, lse = sta.attention(q, k, v, plan, text_valid=text_valid, layout="bshd")
    return out.flatten(2) * 3, lse


def test_compile_fullgraph_forward_has_no_graph_break():
    torch._dynamo.reset()
    plan = small_plan(text_valid=5)
    q, k, v = (x.transpose(1, 2).contiguous() for x in random_inputs(plan))
    valid = torch.tensor([4, 8], dtype=torch.int32) if sta.supports("text_valid") else None
    recorder = GraphRecorder()
    compiled = torch.compile(block, fullgraph=True, backend=recorder)
    with torch.no_grad():
        got, got_lse = compiled(q, k, v, plan, valid)
        want, want_lse = block(q, k, v, plan, valid)
    assert any("sta.attention_forward" in t for t in recorder.targets), recorder.targets
    assert torch.equal(got, want) and torch.equal(got_lse, want_lse)


def compiler_available():
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@needs_backward
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_training_step(backend):
    if backend == "inductor" and not compiler_available():
        pytest.skip("inductor on the CPU needs a C++ compiler")
    torch._dynamo.reset()
    plan = small_plan(text_valid=5)
    base = [x.transpose(1, 2).contiguous() for x in random_inputs(plan)]
    valid = torch.tensor([4, 8], dtype=torch.int32) if sta.supports("text_valid") else None
    compiled = torch.compile(block, fullgraph=True, backend=backend)
    results = []
    for function in (compiled, block):
        leaves = [x.clone().requires_grad_() for x in base]
        out, _ = function(*leaves, plan, valid)
        (out * loss_weights(out)).sum().backward()
        results.append((out.detach(), [x.grad for x in leaves]))
    (got, got_grads), (want, want_grads) = results
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_compile_inductor_forward_on_the_cpu():
    if not compiler_available():
        pytest.skip("inductor on the CPU needs a C++ compiler")
    torch._dynamo.reset()
    plan = small_plan(text_valid=5)
    q, k, v = (x.transpose(1, 2).contiguous() for x in random_inputs(plan))
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        got, _ = compiled(q, k, v, plan, None)
        want, _ = block(q, k, v, plan, None)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


# MARK: CUDA (the GPU machine)


@needs_cuda
@needs_text_valid
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kernel", ["auto", "portable"])
def test_cuda_per_row_text_lengths_without_a_host_sync(dtype, kernel):
    plan = gpu_plan()
    rows = [7, 40]
    q, k, v = random_inputs(plan, head_dim=64, dtype=dtype)
    gpu = [x.cuda() for x in (q, k, v)]
    valid = torch.tensor(rows, dtype=torch.int32, device="cuda")
    sta.attention(*gpu, plan, text_valid=valid, kernel=kernel)  # compiles, uploads tables (synchronous)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out, lse = sta.attention(*gpu, plan, text_valid=valid, kernel=kernel)
        out_int, _ = sta.attention(*gpu, plan, text_valid=7, kernel=kernel)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    want, want_lse, mask, _ = reference(plan, q, k, v, rows)
    attends = mask.any(-1)
    assert relative_error(out.cpu(), want.detach(), attends) < FORWARD_BOUND[dtype]
    assert (lse.cpu() - want_lse.detach())[attends].abs().max() < 1e-3
    assert torch.all(out.cpu()[~attends] == 0) and torch.all(torch.isneginf(lse.cpu()[~attends]))
    again, _ = sta.attention(*gpu, plan, text_valid=torch.tensor([7, 7], device="cuda"), kernel=kernel)
    assert torch.equal(out_int, again)


@needs_cuda
@needs_text_valid
def test_cuda_text_valid_on_the_host_is_refused():
    plan = gpu_plan()
    q, k, v = random_inputs(plan, head_dim=64, dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="q's device"):
        sta.attention(q, k, v, plan, text_valid=torch.tensor([1, 2], dtype=torch.int32))
    with pytest.raises(TypeError, match="CUDA inputs"):
        sta.attention(q, k, v, plan, text_valid=[1, 2])


@needs_cuda
@needs_backward
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kernel", ["auto", "portable", "hopper"])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_cuda_gradients_match_float64_autograd(dtype, kernel, head_dim):
    if kernel == "hopper" and torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the Hopper kernel needs compute capability 9.x")
    plan = gpu_plan()
    per_row = sta.supports("text_valid")
    rows = [7, 40] if per_row else [40, 40]
    base = random_inputs(plan, head_dim=head_dim, dtype=dtype)
    q, k, v = (x.cuda().requires_grad_() for x in base)
    valid = torch.tensor(rows, dtype=torch.int32, device="cuda") if per_row else None
    out, lse = sta.attention(q, k, v, plan, text_valid=valid, kernel=kernel)
    weights = loss_weights(out).cuda()
    (out * weights).sum().backward()
    want, _, _, leaves = reference(plan, *base, rows)
    (want * weights.cpu().double()).sum().backward()
    _, real, _ = _masks.tile_order_positions(plan)
    holes = torch.from_numpy(np.flatnonzero(~real))
    for name, tensor, leaf in zip("qkv", (q, k, v), leaves):
        error = relative_error(tensor.grad.cpu(), leaf.grad)
        assert error < GRADIENT_BOUND[dtype], f"d{name}: relative error {error}"
        grad = tensor.grad.cpu()
        assert torch.all(grad[:, :, holes] == 0)
        assert torch.all(grad[0, :, plan.padded_video_tokens + rows[0]:] == 0)


@needs_cuda
@needs_backward
def test_cuda_compile_inductor_training_step():
    torch._dynamo.reset()
    plan = gpu_plan()
    base = [x.transpose(1, 2).contiguous().cuda() for x in random_inputs(plan, head_dim=64, dtype=torch.bfloat16)]
    valid = torch.tensor([7, 40], dtype=torch.int32, device="cuda") if sta.supports("text_valid") else None
    compiled = torch.compile(block, fullgraph=True)
    results = []
    for function in (compiled, block):
        leaves = [x.clone().requires_grad_() for x in base]
        out, _ = function(*leaves, plan, valid)
        (out.float() * loss_weights(out).cuda().float()).sum().backward()
        results.append((out.detach().float(), [x.grad.float() for x in leaves]))
    (got, got_grads), (want, want_grads) = results
    assert relative_error(got, want) < 1e-2
    for a, b in zip(got_grads, want_grads):
        assert relative_error(a, b) < 2e-2


@needs_cuda
@needs_backward
def test_cuda_opcheck():
    plan = gpu_plan()
    q, k, v = (x.requires_grad_() for x in random_inputs(plan, head_dim=64, dtype=torch.bfloat16, device="cuda"))
    valid = torch.tensor([7, 40], dtype=torch.int32, device="cuda") if sta.supports("text_valid") else None
    torch.library.opcheck(torch.ops.sta.attention_forward.default,
                          (q, k, v, plan.handle.value, 0.0, valid, "auto", 0))
    out, lse = sta.attention(q.detach(), k.detach(), v.detach(), plan, text_valid=valid)
    torch.library.opcheck(torch.ops.sta.attention_backward.default,
                          (q.detach(), k.detach(), v.detach(), out, lse, loss_weights(out).cuda(), plan.handle.value,
                           0.0, valid, "auto", 0))


def test_deterministic_refuses_the_hopper_kernel_and_is_accepted_on_the_cpu():
    plan = small_plan()
    q, k, v = random_inputs(plan, head_dim=16, dtype=torch.float32)
    with pytest.raises(ValueError, match="deterministic=True needs the portable kernels"):
        sta.attention(q, k, v, plan, kernel="hopper", deterministic=True)
    out, _ = sta.attention(q, k, v, plan, deterministic=True)
    again, _ = sta.attention(q, k, v, plan)
    assert torch.equal(out, again)


@needs_cuda
@needs_backward
def test_cuda_deterministic_gradients_are_the_same_bits_on_every_run():
    plan = gpu_plan()
    base = random_inputs(plan, head_dim=128, dtype=torch.bfloat16)
    grads = []
    for _ in range(3):
        q, k, v = (x.cuda().requires_grad_() for x in base)
        out, _ = sta.attention(q, k, v, plan, deterministic=True)
        (out * loss_weights(out).cuda()).sum().backward()
        grads.append([t.grad.cpu() for t in (q, k, v)])
    for later in grads[1:]:
        for first, other in zip(grads[0], later):
            assert torch.equal(first.view(torch.int16), other.view(torch.int16))
