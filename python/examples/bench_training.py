#!/usr/bin/env python3
"""One training step (forward + backward) of a HunyuanVideo double-stream block with three attentions.

The block is diffusers' ``HunyuanVideoTransformerBlock`` (diffusers 0.42) at the 13B model's width —
hidden 3072, 24 heads of 128, MLP ratio 4 — with random bf16 weights, fed the hunyuan shape: 30×48×80
video tokens (a latent of 30×96×160 in patches of 2) and 256 text tokens, with the model's rotary embedding.
The attention processor is diffusers' computation (projections, QK RMS norm, rotary embedding, the joint
video + text sequence, the output projections) with the attention call swapped:

  sta     ``sta.diffusers.sta_attention`` (the processors' path: the [B, S, H, D] tokens gathered into tile
          order, the custom op ``torch.ops.sta.attention_forward`` and, through autograd,
          ``attention_backward``), window ``--window`` (3×3×3) on every head, tile 6×8×8
  flex    FlexAttention (compiled) with the same mask (``flex_sta.block_mask``), on the same tile-order
          tensors and the same gathers
  cudnn   dense attention, ``F.scaled_dot_product_attention`` on cuDNN (flash if cuDNN refuses the shape)

Per attention, one JSON row: ``model`` ("hunyuan-double-block"), ``attention``, ``step_s`` (median of
``--steps`` CUDA-synchronised forward + backward passes after ``--warmup``), ``peak_gib``
(``torch.cuda.max_memory_allocated`` over the timed steps, reset before each attention), ``attention_s``
(the attention alone, forward + backward with its gathers, on the block's q, k, v shapes, median), and
``attention_share`` = attention_s / step_s. The sta row adds ``backward_kernel``, ``speedup_vs_flex`` and
``amdahl_vs_flex_s``: flex's step with flex's attention time replaced by STA's (the step STA would take if
only the attention changed), and ``speedup_vs_cudnn``.

    python3 python/examples/bench_training.py --output training.json
    python3 python/examples/bench_training.py --tiny --device cpu     # the whole path on a CPU
    python3 python/examples/bench_training.py --whole-model --attention sta,flex --steps 2 --warmup 1

``--whole-model`` times the whole HunyuanVideo 13B transformer (random bf16 weights, the pipeline's
inputs at the same shape) instead: STA through ``sta.diffusers.enable_sta``'s own processors, flex and
cudnn through the processor above on all 60 blocks, diffusers' activation checkpointing on
(``--no-checkpointing`` turns it off), gradients for the attention projections (``--trainable
attention``, an adapter fine-tune's footprint) or for every parameter (``--trainable all``). Rows give
``attention_call_s`` and ``attention_calls`` instead of the share (checkpointing runs each forward twice).

``--tiny`` shrinks the block (2 heads of 16) and the canvas (5×7×14 tokens in 2×2×4 tiles: holes on two
axes; 12 text tokens) and, with ``--check`` (on by default with ``--tiny``), compares the STA step's
gradients — every parameter of the block and the inputs — with the same step whose attention is the same
mask written out densely (``flex_sta.dense_mask``): they must agree within spec §4's bound and the
attention's projection weights must get non-zero gradients. On the CPU, FlexAttention has no backward:
the flex row there runs that dense mask instead and says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import flex_sta  # noqa: E402
import sta  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta._diffusers_layout import JointLayout  # noqa: E402

ATTENTIONS = ("sta", "flex", "cudnn")
BOUNDS = {torch.float32: 1e-4, torch.float16: 3e-3, torch.bfloat16: 1e-2}


def shape_arg(text):
    return tuple(int(x) for x in text.lower().split("x"))


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attention", default=",".join(ATTENTIONS), help="comma-separated: sta, flex, cudnn")
    p.add_argument("--window", type=shape_arg, default=(3, 3, 3))
    p.add_argument("--kernel", default="auto", choices=["auto", "portable", "hopper"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="compare the STA step's gradients with the dense-mask step's (default: with --tiny)")
    p.add_argument("--output", help="write the rows here (JSON list) as they come")
    p.add_argument("--whole-model", action="store_true",
                   help="the whole HunyuanVideo 13B transformer (20 double- and 40 single-stream blocks) instead of "
                        "one block: STA through sta.diffusers.enable_sta's processors")
    p.add_argument("--trainable", choices=["attention", "all"], default="attention",
                   help="--whole-model: parameters that get gradients: the attention projections (default, the "
                        "footprint of an adapter fine-tune) or all")
    p.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=True,
                   help="--whole-model: diffusers' activation checkpointing of every block (default on)")
    a = p.parse_args(argv)
    a.attention = [x.strip() for x in a.attention.split(",") if x.strip()]
    for name in a.attention:
        if name not in ATTENTIONS:
            p.error(f"--attention {name}: allowed {', '.join(ATTENTIONS)}")
    if a.steps < 1 or a.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    if a.tiny:
        a.heads, a.head_dim, a.canvas, a.tile, a.text, a.rope = 2, 16, (5, 7, 14), (2, 2, 4), 12, [4, 6, 6]
        a.dtype = torch.float32
    else:
        a.heads, a.head_dim, a.canvas, a.tile, a.text, a.rope = 24, 128, (30, 48, 80), (6, 8, 8), 256, [16, 56, 56]
        a.dtype = torch.bfloat16
    a.check = a.tiny if a.check is None else a.check
    a.model = "hunyuan-double-block" + ("-tiny" if a.tiny else "")
    if a.whole_model:
        a.check = False
        a.model = "hunyuan-13b" + ("-tiny" if a.tiny else "")
    return a


# MARK: the block and its attention


class SwappableProcessor:
    """diffusers' HunyuanVideo joint-attention computation (double-stream blocks: separate video and text
    projections; single-stream blocks: one projection of the joined sequence, rotary on the video part)
    with ``self.attend(q, k, v)`` ([B, S, H, D] in the model's order: video in raster order, then text) in
    place of the attention call. Every text token is taken as valid (the benchmark's inputs have no
    padding), so the [B, 1, 1, N] text mask is not read."""

    def __init__(self, attend):
        self.attend = attend

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        def heads(x):
            return x.unflatten(2, (attn.heads, -1))

        text = encoder_hidden_states.shape[1]
        single_stream = attn.add_q_proj is None
        if single_stream:
            hidden_states = torch.cat([hidden_states, encoder_hidden_states], dim=1)
        query = attn.norm_q(heads(attn.to_q(hidden_states)))
        key = attn.norm_k(heads(attn.to_k(hidden_states)))
        value = heads(attn.to_v(hidden_states))
        if single_stream:
            query = torch.cat([apply_rotary_emb(query[:, :-text], image_rotary_emb, sequence_dim=1),
                               query[:, -text:]], dim=1)
            key = torch.cat([apply_rotary_emb(key[:, :-text], image_rotary_emb, sequence_dim=1),
                             key[:, -text:]], dim=1)
        else:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
            query = torch.cat([query, attn.norm_added_q(heads(attn.add_q_proj(encoder_hidden_states)))], dim=1)
            key = torch.cat([key, attn.norm_added_k(heads(attn.add_k_proj(encoder_hidden_states)))], dim=1)
            value = torch.cat([value, heads(attn.add_v_proj(encoder_hidden_states))], dim=1)

        out = self.attend(query, key, value).flatten(2, 3).to(query.dtype)
        video, context = out[:, :-text], out[:, -text:]
        if getattr(attn, "to_out", None) is not None:
            video = attn.to_out[1](attn.to_out[0](video))
        if getattr(attn, "to_add_out", None) is not None:
            context = attn.to_add_out(context)
        return video, context


class Attentions:
    """The three attention functions on [B, S, H, D] tensors in the model's order."""

    def __init__(self, a, device):
        self.a, self.device = a, device
        self.windows = [tuple(a.window)] * a.heads
        self.plan = sta.Plan(canvas=a.canvas, tile=a.tile, text=a.text, windows=self.windows)
        self.layout = JointLayout(a.canvas, a.tile, a.text, False, device)
        self.scale = 1 / math.sqrt(a.head_dim)
        self._mask = None
        self._dense = None

    def sta(self, q, k, v):
        return sd.sta_attention(q, k, v, canvas=self.a.canvas, tile=self.a.tile, windows=self.windows,
                                text=self.a.text, kernel=self.a.kernel)

    def flex(self, q, k, v):
        if self._mask is None:
            self._mask = flex_sta.block_mask(self.plan, self.device)
        tiled = [self.layout.to_tiles(x) for x in (q, k, v)]
        return self.layout.from_tiles(flex_sta.flex_attention(*tiled, self._mask, scale=self.scale))

    def dense_mask(self, q, k, v):
        """The STA mask written out, softmax under autograd (small problems; the CPU's stand-in for flex)."""
        if self._dense is None:
            self._dense = flex_sta.dense_mask(self.plan, self.device)
        tiled = [self.layout.to_tiles(x) for x in (q, k, v)]
        return self.layout.from_tiles(flex_sta.masked_attention(*tiled, self._dense, self.scale))

    def cudnn(self, q, k, v):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        # cuDNN, with flash as the fallback for a shape cuDNN refuses; the math kernel on the CPU.
        backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION] if q.is_cuda else [SDPBackend.MATH]
        with sdpa_kernel(backends):
            out = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v)))
        return out.transpose(1, 2)

    def function(self, name):
        if name == "flex" and self.device.type != "cuda":
            return "dense-mask", self.dense_mask
        return {"sta": ("sta", self.sta), "flex": ("flex", self.flex),
                "cudnn": ("cudnn" if self.device.type == "cuda" else "sdpa", self.cudnn)}[name]


def build(a, device, seed=0):
    """The block (random weights in a.dtype) and its inputs: hidden states, text, temb, rotary (cos, sin)."""
    from diffusers.models.transformers.transformer_hunyuan_video import (
        HunyuanVideoRotaryPosEmbed, HunyuanVideoTransformerBlock)

    torch.manual_seed(seed)
    hidden = a.heads * a.head_dim
    with torch.device(device):
        block = HunyuanVideoTransformerBlock(a.heads, a.head_dim, mlp_ratio=4.0, qk_norm="rms_norm").to(a.dtype)
    t, h, w = a.canvas
    latent = torch.empty(1, 1, t, 2 * h, 2 * w, device=device)
    rotary = HunyuanVideoRotaryPosEmbed(patch_size=2, patch_size_t=1, rope_dim=a.rope, theta=256.0)(latent)
    generator = torch.Generator().manual_seed(seed + 1)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=a.dtype)

    inputs = {"hidden_states": randn(1, t * h * w, hidden), "encoder_hidden_states": randn(1, a.text, hidden),
              "temb": randn(1, hidden), "freqs_cis": rotary}
    gradients = (randn(1, t * h * w, hidden), randn(1, a.text, hidden))
    return block, inputs, gradients


def training_step(block, inputs, gradients):
    """Forward and backward of the block, gradients into the parameters and the two token inputs."""
    for p in block.parameters():
        p.grad = None
    hidden = inputs["hidden_states"].detach().requires_grad_(True)
    context = inputs["encoder_hidden_states"].detach().requires_grad_(True)
    outputs = block(hidden, context, inputs["temb"], None, inputs["freqs_cis"])
    torch.autograd.backward(outputs, gradients)
    return hidden.grad, context.grad


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device, steps, warmup):
    """Median wall time of ``function`` over ``steps`` runs after ``warmup``, synchronised around each."""
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def attention_only(attend, a, device, steps, warmup):
    """The attention alone, forward + backward, on the block's q, k, v shapes ([1, S, H, D])."""
    length = math.prod(a.canvas) + a.text
    generator = torch.Generator().manual_seed(7)
    q, k, v, dout = (torch.randn(1, length, a.heads, a.head_dim, generator=generator).to(device=device, dtype=a.dtype)
                     for _ in range(4))
    leaves = [x.requires_grad_(True) for x in (q, k, v)]

    def step():
        torch.autograd.grad(attend(*leaves), leaves, dout)

    return timed(step, device, steps, warmup)


# MARK: the gradient check


def relative(got, want):
    got, want = got.double().flatten(), want.double().flatten()
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


def check_gradients(a, device, attentions):
    """STA's step against the dense-mask step on the same block and inputs: worst relative error over the
    parameters' and inputs' gradients, and whether the attention projections got non-zero gradients."""
    block, inputs, gradients = build(a, device)
    results = {}
    for name, attend in (("sta", attentions.sta), ("reference", attentions.dense_mask)):
        block.attn.set_processor(SwappableProcessor(attend))
        token_grads = training_step(block, inputs, gradients)
        # A parameter the loss does not reach has no gradient: zeros stand for it.
        results[name] = [g.detach().clone() for g in token_grads] + [
            torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in block.parameters()]
        names = ["hidden_states", "encoder_hidden_states"] + [n for n, _ in block.named_parameters()]
    errors = {n: relative(g, r) for n, g, r in zip(names, results["sta"], results["reference"])}
    projections = [n for n in names if n.startswith("attn.to_") or n.startswith("attn.add_")]
    nonzero = all(bool(results["sta"][names.index(n)].abs().sum() > 0) for n in projections)
    worst = max(errors, key=errors.get)
    return {"worst_gradient": worst, "worst_rel": errors[worst], "projections_nonzero": nonzero,
            "bound": BOUNDS[a.dtype], "passed": nonzero and errors[worst] <= BOUNDS[a.dtype]}


# MARK: the whole model


def whole_model(a, device, rows, save) -> int:
    """The whole transformer's training step per attention (``--whole-model``); rows as for the block, with
    ``attention_call_s`` (one attention call, forward + backward) and ``attention_calls`` in place of the
    share (activation checkpointing runs each forward twice)."""
    import argparse as _argparse

    import diffusers_models as models

    problem = models.problem("hunyuan", a.tiny)
    model = models.build("hunyuan", tiny=a.tiny, device=device, dtype=a.dtype)
    config = model.config
    latent = problem["latent"]
    canvas = (latent[1] // config.patch_size_t, latent[2] // config.patch_size, latent[3] // config.patch_size)
    window = tuple(problem["window"]) if a.tiny else tuple(a.window)
    shape = _argparse.Namespace(
        canvas=canvas, tile=tuple(problem["tile"]), text=problem["text"], heads=config.num_attention_heads,
        head_dim=config.attention_head_dim, window=window, kernel=a.kernel, dtype=a.dtype)
    attentions = Attentions(shape, device)
    blocks = list(model.transformer_blocks) + list(model.single_transformer_blocks)
    for name, parameter in model.named_parameters():
        projection = ".attn.to_" in name or ".attn.add_" in name
        parameter.requires_grad_(a.trainable == "all" or (projection and name.split(".")[0] in (
            "transformer_blocks", "single_transformer_blocks")))
    if a.checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    inputs = models.inputs("hunyuan", model, tiny=a.tiny, device=device, dtype=a.dtype)
    generator = torch.Generator().manual_seed(3)
    gradient = torch.randn(inputs["hidden_states"].shape, generator=generator).to(device=device, dtype=a.dtype)

    def step():
        model.zero_grad(set_to_none=True)
        model(**inputs).sample.backward(gradient)

    status = 0
    originals = [block.attn.processor for block in blocks]
    for requested in a.attention:
        name, attend = attentions.function(requested)
        row = {"model": a.model, "attention": name, "trainable": a.trainable, "checkpointing": a.checkpointing}
        try:
            if requested == "sta":
                sd.enable_sta(model, strategy=window, tile=shape.tile, kernel=a.kernel)
            else:
                for block in blocks:
                    block.attn.set_processor(SwappableProcessor(attend))
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            row["step_s"] = timed(step, device, a.steps, a.warmup)
            if device.type == "cuda":
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            model.zero_grad(set_to_none=True)
            row["attention_calls"] = len(blocks)
            row["attention_call_s"] = attention_only(attend, shape, device, a.steps, a.warmup)
            if name == "sta":
                row["window"] = list(window)
                row["backward_kernel"] = (
                    sta.kernel_choice(attentions.plan, a.dtype, shape.head_dim, backward=True,
                                      device=device.index or 0, kernel=a.kernel)
                    if device.type == "cuda" else "cpu")
        except Exception as error:  # one attention failing does not stop the others
            row["error"] = f"{type(error).__name__}: {error}"[:300]
            status = 1
        finally:
            sd.disable_sta(model)
            for block, original in zip(blocks, originals):
                block.attn.set_processor(original)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
        save()
    return status


# MARK: main


def main(argv=None) -> int:
    a = parse(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_training: no CUDA device; use --tiny --device cpu", file=sys.stderr)
        return 2
    rows = []

    def save():
        if a.output:
            with open(a.output, "w") as f:
                json.dump(rows, f, indent=1)

    if a.whole_model:
        status = whole_model(a, device, rows, save)
        print(json.dumps(rows))
        return status

    attentions = Attentions(a, device)
    status = 0
    if a.check:
        result = check_gradients(a, device, attentions)
        rows.append({"model": a.model, "check": "sta gradients vs dense mask", **result})
        print(f"gradient check: worst {result['worst_gradient']} rel {result['worst_rel']:.3g} "
              f"(bound {result['bound']:g}), projections non-zero: {result['projections_nonzero']}", file=sys.stderr)
        status |= 0 if result["passed"] else 1
        save()

    block, inputs, gradients = build(a, device)
    by_request = {}
    for requested in a.attention:
        name, attend = attentions.function(requested)
        row = {"model": a.model, "attention": name}
        try:
            block.attn.set_processor(SwappableProcessor(attend))
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            row["step_s"] = timed(lambda: training_step(block, inputs, gradients), device, a.steps, a.warmup)
            if device.type == "cuda":
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            for p in block.parameters():
                p.grad = None
            row["attention_s"] = attention_only(attend, a, device, a.steps, a.warmup)
            row["attention_share"] = row["attention_s"] / row["step_s"]
            if name == "sta":
                row["window"] = list(a.window)
                row["backward_kernel"] = (
                    sta.kernel_choice(attentions.plan, a.dtype, a.head_dim, backward=True,
                                      device=device.index or 0, kernel=a.kernel)
                    if device.type == "cuda" else "cpu")
            if name == "dense-mask":
                row["note"] = "FlexAttention has no CPU backward: the same mask, written out densely"
        except Exception as error:  # one attention failing does not stop the others
            row["error"] = f"{type(error).__name__}: {error}"[:300]
            status = 1
        rows.append(row)
        if "error" not in row:
            by_request[requested] = row
        print(json.dumps(row), file=sys.stderr)
        save()

    # The sta row against the others (on the CPU the flex and cudnn rows are "dense-mask" and "sdpa").
    if "sta" in by_request:
        ours = by_request["sta"]
        peer = by_request.get("flex")
        if peer is not None:
            ours["speedup_vs_flex"] = peer["step_s"] / ours["step_s"]
            ours["amdahl_vs_flex_s"] = peer["step_s"] - peer["attention_s"] + ours["attention_s"]
        if "cudnn" in by_request:
            ours["speedup_vs_cudnn"] = by_request["cudnn"]["step_s"] / ours["step_s"]
    save()
    print(json.dumps(rows))
    return status


if __name__ == "__main__":
    sys.exit(main())
