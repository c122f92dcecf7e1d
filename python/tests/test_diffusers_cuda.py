"""sta.diffusers on a CUDA GPU: bf16, head dim 64, the CUDA kernels (skipped without a GPU).

* With every window full, a whole denoising step through the STA processors equals diffusers' own bf16 step
  within 1e-2 (HunyuanVideo with 256 text tokens, valid lengths 77 and 256 in one batch; Wan with holes;
  FLUX with text first).
* With STA windows, one layer equals diffusers' processor under the spec's explicit mask (SDPA, bf16).
* A new prompt length reuses the prepared plans (no new plan inside the loop).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

import diffusers_models as models  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta.strategy import FULL, Uniform  # noqa: E402
from test_diffusers import head_masks, record_attention_inputs, relative_error  # noqa: E402

DEVICE = torch.device("cuda")
DTYPE = torch.bfloat16
OVERRIDES = {
    "hunyuan": dict(num_attention_heads=2, attention_head_dim=64, rope_axes_dim=(16, 24, 24)),
    "wan": dict(num_attention_heads=2, attention_head_dim=64),
    "flux": dict(num_attention_heads=2, attention_head_dim=64, axes_dims_rope=(16, 24, 24)),
}
TILES = {"hunyuan": (1, 2, 2), "wan": (2, 2, 4), "flux": (2, 4)}
WINDOWS = {"hunyuan": [(3, 1, 3), (1, 3, 1)], "wan": [(1, 3, 1), (3, 1, 3)], "flux": [(3, 3), (1, 3)]}


def build(name):
    return models.build(name, tiny=True, device=DEVICE, dtype=DTYPE, seed=5, **OVERRIDES[name])


def arguments_for(name, model):
    if name != "hunyuan":
        return models.inputs(name, model, tiny=True, device=DEVICE, dtype=DTYPE)
    arguments = models.inputs(name, model, tiny=True, batch=2, device=DEVICE, dtype=DTYPE)
    text = torch.randn(2, 256, model.config.text_embed_dim, generator=torch.Generator().manual_seed(9))
    mask = torch.ones(2, 256, dtype=torch.bool)
    mask[0, 77:] = False
    arguments.update(encoder_hidden_states=text.to(DEVICE, DTYPE), encoder_attention_mask=mask.to(DEVICE))
    return arguments


@pytest.mark.parametrize("name", ["hunyuan", "wan", "flux"])
def test_full_windows_step_equals_diffusers_bf16(name):
    model = build(name)
    arguments = arguments_for(name, model)
    with torch.no_grad():
        reference = model(**arguments).sample
        sd.enable_sta(model, strategy=FULL, tile=TILES[name])
        try:
            output = model(**arguments).sample
        finally:
            sd.disable_sta(model)
    assert torch.isfinite(output).all()
    assert relative_error(output.float(), reference.float()) < 1e-2


@pytest.mark.parametrize("name", ["hunyuan", "wan", "flux"])
def test_one_layer_equals_sdpa_under_the_explicit_mask_bf16(name):
    model = build(name)
    windows = WINDOWS[name]
    module = model.blocks[1].attn1 if name == "wan" else model.single_transformer_blocks[-1].attn
    arguments = arguments_for(name, model)
    calls, handle = record_attention_inputs(module)
    try:
        with torch.no_grad():
            context = sd.enable_sta(model, strategy=Uniform(windows), tile=TILES[name])
            model(**arguments)
            args, kwargs = calls[-1]
            original = dict(getattr(model, sd._ATTRIBUTE).originals)[module]
            ours = module(*args, **kwargs)
            import inspect

            bound = dict(inspect.signature(original.__call__).bind(module, *args, **kwargs).arguments)
            bound.pop("attn")
            text = context.text or 0
            valid = [77, 256] if name == "hunyuan" else [text]
            bound["attention_mask"] = head_masks(context.canvas, TILES[name], text, valid, windows,
                                                 text_first=(name == "flux")).to(DEVICE)
            theirs = original(module, **bound)
    finally:
        handle.remove()
        sd.disable_sta(model)
    if isinstance(ours, tuple):
        ours, theirs = ours[0], theirs[0]  # the video stream (the text rows are checked on the CPU)
    assert relative_error(ours.float(), theirs.float()) < 1e-2


def test_a_new_prompt_length_needs_no_new_plan():
    model = build("hunyuan")
    context = sd.enable_sta(model, strategy=Uniform(WINDOWS["hunyuan"]), tile=TILES["hunyuan"])
    try:
        with torch.no_grad():
            arguments = arguments_for("hunyuan", model)
            model(**arguments)
            plans = len(context.plans)
            arguments["encoder_attention_mask"][1, 100:] = False  # another prompt length
            model(**arguments)
        assert len(context.plans) == plans == 1
    finally:
        sd.disable_sta(model)
