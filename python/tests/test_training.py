"""Training through STA: the FlexAttention mask the comparisons use, the gradient comparison script and the
training-step benchmark on tiny CPU layouts, and diffusers' models training through the STA processors.

* ``flex_sta``'s unit mask equals the spec's mask built independently (``_masks``), and its block flags
  (full / partial / skipped) agree with that mask on every block pair.
* ``gradients_vs_flex.py --tiny --device cpu``: dq, dk, dv of ``sta.attention`` (custom op, autograd)
  within spec §4 of float64 on sampled rows, empty rows exactly 0; a wrong dk makes it exit 1.
* ``bench_training.py --tiny --device cpu``: the block's gradients with STA equal those with the same
  mask written out densely, every attention row is timed.
* HunyuanVideo, Wan and FLUX (tiny, fp32) with every window full: the parameters' gradients through the
  STA processors equal those through diffusers' own processors; HunyuanVideo with a sparse window: equal
  to those under the same mask written out densely.
* ``bench_training.py --whole-model`` on a tiny HunyuanVideo.

Skipped without torch (and, for the block and the models, diffusers) or libsta_c.so; timings are not
asserted. GPU: ``python/examples/gradients_vs_flex.py`` and ``bench_training.py`` at full size.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, HERE)

torch = pytest.importorskip("torch")

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

needs_backward = pytest.mark.skipif(
    not sta.supports("backward"), reason="the loaded libsta_c is C interface 1 (no backward pass)")
needs_text_valid = pytest.mark.skipif(
    not sta.supports("text_valid"), reason="the loaded libsta_c takes no per-row text lengths")

import _masks  # noqa: E402
import flex_sta  # noqa: E402


def plans():
    return [
        # Holes on two axes, padding text, per-head windows (one clamped on every axis, one full on T).
        sta.Plan(canvas=(5, 6, 10), tile=(2, 2, 4), text=24, text_valid=17, windows=[(1, 3, 3), (3, 3, 3), (5, 1, 1)]),
        # 2-D, text all valid, tiles of 8 tokens against blocks of 16: blocks span two tiles.
        sta.Plan(canvas=(12, 10), tile=(4, 2), text=5, windows=[(1, 3), (3, 1)]),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_flex_mask_is_the_spec_mask(index):
    plan = plans()[index]
    dense = flex_sta.dense_mask(plan, "cpu")
    for head in range(plan.heads):
        expected = torch.from_numpy(_masks.tile_order_mask(plan, head, plan.text_valid))
        assert torch.equal(dense[head], expected), f"head {head}"
    block = 16
    full, partial = flex_sta.block_flags(plan, "cpu", block)
    length = plan.sequence_length
    blocks = -(-length // block)
    padded = torch.zeros(plan.heads, blocks * block, blocks * block, dtype=torch.bool)
    padded[:, :length, :length] = dense
    tiles = padded.unflatten(1, (blocks, block)).unflatten(3, (blocks, block))  # [H, qb, 16, kb, 16]
    some = tiles.any(dim=(2, 4))
    # Full only where every real pair is allowed (a ragged last block counts only its tokens).
    inside = torch.zeros(blocks * block, dtype=torch.bool)
    inside[:length] = True
    pairs = (inside[:, None] & inside[None, :]).unflatten(0, (blocks, block)).unflatten(2, (blocks, block))
    every = (tiles | ~pairs[None]).all(dim=(2, 4))
    assert torch.equal(full | partial, some)
    assert torch.equal(full, some & every)
    assert bool(partial.any()) and bool(full.any()) and not bool((full & partial).any())


# MARK: the gradient comparison


@needs_backward
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gradient_script_passes_on_a_tiny_layout(tmp_path, dtype):
    import gradients_vs_flex as script

    output = tmp_path / "gradients.json"
    status = script.main(["--tiny", "--device", "cpu", "--dtype", dtype, "--output", str(output)])
    report = json.loads(output.read_text())
    assert status == 0, report["failures"]
    assert report["passed"] and report["bad_empty_rows"] == 0 and report["empty_rows"] > 0
    bound = {"float32": 1e-4, "bfloat16": 1e-2}[dtype]
    assert report["bound"] == bound
    for name in ("dq", "dk", "dv"):
        for pair in ("sta_vs_float64", "peer_vs_float64", "sta_vs_peer"):
            e = report["gradients"][name][pair]
            assert 0 < e["rel"] < bound and e["row_mean"] <= e["row_max"]
    assert report["flex_forward_vs_sta"] < bound and 0 < report["forward_sta_vs_peer"]["rel"] < bound


@needs_backward
def test_gradient_script_fails_when_a_dk_row_is_wrong(tmp_path, monkeypatch):
    import gradients_vs_flex as script

    original = script.reference_rows

    def shifted(*args, **kwargs):
        dq, dk, dv = original(*args, **kwargs)
        dk = dk.clone()
        dk[1, 3] *= 1.5  # one key row of head 1
        return dq, dk, dv

    monkeypatch.setattr(script, "reference_rows", shifted)
    output = tmp_path / "gradients.json"
    assert script.main(["--tiny", "--device", "cpu", "--output", str(output)]) == 1
    report = json.loads(output.read_text())
    assert [f.split()[:2] for f in report["failures"]] == [["dk", "sta_vs_float64"], ["dk", "peer_vs_float64"]]


# MARK: the training step


@needs_backward
def test_training_benchmark_tiny(tmp_path):
    pytest.importorskip("diffusers")
    import bench_training

    output = tmp_path / "rows.json"
    status = bench_training.main(["--tiny", "--device", "cpu", "--steps", "1", "--warmup", "0",
                                  "--output", str(output)])
    rows = json.loads(output.read_text())
    assert status == 0, rows
    check = rows[0]
    assert check["passed"] and check["projections_nonzero"] and check["worst_rel"] < 1e-4
    timed = {row["attention"]: row for row in rows[1:]}
    assert set(timed) == {"sta", "dense-mask", "sdpa"}
    for row in timed.values():
        assert row["model"] == "hunyuan-double-block-tiny" and row["step_s"] > 0 and row["attention_s"] > 0
        assert row["attention_share"] == pytest.approx(row["attention_s"] / row["step_s"])
    ours = timed["sta"]
    assert ours["backward_kernel"] == "cpu" and ours["speedup_vs_cudnn"] > 0 and ours["speedup_vs_flex"] > 0
    peer = timed["dense-mask"]
    assert ours["amdahl_vs_flex_s"] == pytest.approx(peer["step_s"] - peer["attention_s"] + ours["attention_s"])


@needs_backward
def test_training_check_catches_a_detached_attention(monkeypatch):
    """If STA's output carried no gradient to q, k, v, the projections would get none: the check fails."""
    pytest.importorskip("diffusers")
    import bench_training

    a = bench_training.parse(["--tiny", "--device", "cpu"])
    attentions = bench_training.Attentions(a, torch.device("cpu"))
    real = attentions.sta
    monkeypatch.setattr(attentions, "sta", lambda q, k, v: real(q.detach(), k.detach(), v.detach()))
    result = bench_training.check_gradients(a, torch.device("cpu"), attentions)
    assert not result["passed"] and not result["projections_nonzero"]


@needs_backward
@pytest.mark.parametrize("name", [pytest.param("hunyuan", marks=needs_text_valid), "wan", "flux"])
def test_diffusers_processors_train_through(name):
    """Full windows: the gradient of every parameter through the STA processors equals diffusers' own."""
    pytest.importorskip("diffusers")
    import diffusers_models as models
    import sta.diffusers as sd
    from sta.strategy import FULL

    tiles = {"hunyuan": (1, 2, 2), "wan": (2, 2, 4), "flux": (2, 4)}
    model = models.build(name, tiny=True, seed=5).requires_grad_(True)
    batch = 2 if name == "hunyuan" else 1
    arguments = models.inputs(name, model, tiny=True, batch=batch,
                              text_valid=[7, 16] if name == "hunyuan" else None)

    def gradients():
        model.zero_grad(set_to_none=True)
        out = model(**arguments).sample
        weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
        (out * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    reference = gradients()
    sd.enable_sta(model, strategy=FULL, tile=tiles[name])
    try:
        through_sta = gradients()
    finally:
        sd.disable_sta(model)
    assert set(through_sta) == set(reference)
    attention = [n for n in reference if ".to_q." in n or ".to_k." in n]
    assert attention and all(float(through_sta[n].abs().sum()) > 0 for n in attention)
    worst = max(float((through_sta[n] - reference[n]).norm() / reference[n].norm().clamp_min(1e-30))
                for n in reference if float(reference[n].norm()) > 1e-6 * max(1.0, float(reference[n].abs().max())))
    assert worst < 1e-3


@needs_backward
@needs_text_valid
def test_hunyuan_processors_train_through_sparse_windows():
    """A sparse window: every parameter's gradient through ``enable_sta``'s processors (tiny HunyuanVideo,
    holes-free canvas 5×6×8 in 1×2×2 tiles, window 3×3×3) equals the one through diffusers' computation with
    the same mask written out densely (bench_training's processor)."""
    pytest.importorskip("diffusers")
    import argparse

    import bench_training
    import diffusers_models as models
    import sta.diffusers as sd

    model = models.build("hunyuan", tiny=True, seed=2).requires_grad_(True)
    arguments = models.inputs("hunyuan", model, tiny=True)
    config = model.config
    shape = argparse.Namespace(canvas=(5, 6, 8), tile=(1, 2, 2), text=16, heads=config.num_attention_heads,
                               head_dim=config.attention_head_dim, window=(3, 3, 3), kernel="auto",
                               dtype=torch.float32)
    attentions = bench_training.Attentions(shape, torch.device("cpu"))
    blocks = list(model.transformer_blocks) + list(model.single_transformer_blocks)
    weights = None

    def gradients():
        nonlocal weights
        model.zero_grad(set_to_none=True)
        out = model(**arguments).sample
        if weights is None:
            weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(4))
        (out * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    dense = gradients()
    originals = [block.attn.processor for block in blocks]
    for block in blocks:
        block.attn.set_processor(bench_training.SwappableProcessor(attentions.dense_mask))
    masked = gradients()
    for block, original in zip(blocks, originals):
        block.attn.set_processor(original)
    sd.enable_sta(model, strategy=(3, 3, 3), tile=(1, 2, 2))
    try:
        through_sta = gradients()
    finally:
        sd.disable_sta(model)

    def worst(a, b):
        # Key biases before a softmax get gradients of rounding noise only (about 1e-7): not compared.
        return max(float((a[n] - b[n]).norm() / b[n].norm()) for n in b if float(b[n].norm()) > 1e-5)

    assert set(through_sta) == set(masked)
    assert worst(through_sta, masked) < 1e-4
    # The window matters: dense attention gives other gradients.
    assert worst(through_sta, dense) > 1e-2


@needs_backward
def test_training_benchmark_whole_model_tiny(tmp_path):
    pytest.importorskip("diffusers")
    import bench_training

    output = tmp_path / "rows.json"
    status = bench_training.main(["--tiny", "--device", "cpu", "--whole-model", "--steps", "1", "--warmup", "0",
                                  "--output", str(output)])
    rows = json.loads(output.read_text())
    assert status == 0, rows
    assert [row["attention"] for row in rows] == ["sta", "dense-mask", "sdpa"]
    for row in rows:
        assert row["model"] == "hunyuan-13b-tiny" and row["step_s"] > 0 and row["attention_calls"] == 3
