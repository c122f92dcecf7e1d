"""sta.diffusers on tiny HunyuanVideo, Wan 2.1 and FLUX transformers (random weights, fp32, CPU kernel).

* With every window full, a whole denoising step through the STA processors equals diffusers' own step on
  the same weights and inputs (HunyuanVideo with padded text: valid lengths 7 and 16 in one batch).
* With STA windows, one layer's attention equals diffusers' processor running SDPA under the explicit
  token-level mask of the spec (all rows of the tiny problem).
* enable/disable restore the processor objects; steps come from the scheduler; bad input is refused.

Skipped without torch, diffusers or libsta_c.so. On a CUDA machine the same tests run on the CPU.
"""

from __future__ import annotations

import math
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

from sta import _library  # noqa: E402

# HunyuanVideo passes its text mask as per-row valid lengths: the library's kernels must take them.
needs_text_valid = pytest.mark.skipif(
    not _library.supports("text_valid"),
    reason="this libsta_c.so's CPU kernel takes no per-row text lengths (C interface 2 with per-row text needed)")

import diffusers_models as models  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta.strategy import FULL, FullFirst, MaskStrategy, PerLayer, Uniform  # noqa: E402

TINY_TILES = {"hunyuan": (1, 2, 2), "wan": (2, 2, 4), "flux": (2, 4)}


def relative_error(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def tiny(name, **overrides):
    return models.build(name, tiny=True, seed=3, **overrides)


# MARK: the spec's mask, stated independently of the library


def allowed(canvas, tile, text, valid, window):
    """[S, S] boolean mask of spec §2 in raster order (video, then text) for one head."""
    grid = [-(-c // t) for c, t in zip(canvas, tile)]
    window = [min(w, n) for w, n in zip(window, grid)]
    coordinates = torch.stack(torch.meshgrid(*[torch.arange(c) for c in canvas], indexing="ij"), -1).reshape(-1, len(canvas))
    tiles = coordinates // torch.tensor(tile)
    radius = torch.tensor(window) // 2
    low = radius
    high = torch.tensor(grid) - 1 - radius
    centre = torch.maximum(torch.minimum(tiles, high), low)
    inside = ((centre[:, None, :] - tiles[None, :, :]).abs() <= radius).all(-1)
    video = coordinates.shape[0]
    size = video + text
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[:video, :video] = inside
    mask[:, video:video + valid] = True  # every query sees the real text
    mask[video:, :video] = True  # text queries see every video key
    return mask


def head_masks(canvas, tile, text, valids, windows, text_first=False):
    """[B, H, S, S] in the model's order (FLUX: text first)."""
    rows = []
    for valid in valids:
        heads = [allowed(canvas, tile, text, valid, w) for w in windows]
        rows.append(torch.stack(heads))
    mask = torch.stack(rows)
    if text_first:
        video = math.prod(canvas)
        order = torch.cat([torch.arange(video, video + text), torch.arange(video)])
        mask = mask[:, :, order][:, :, :, order]
    return mask


def record_attention_inputs(module):
    """Keeps the arguments of the next calls of ``module`` (an attention module)."""
    calls = []

    def hook(mod, args, kwargs):
        calls.append((args, dict(kwargs)))

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    return calls, handle


# MARK: full windows: a whole step equals diffusers' step


@pytest.mark.parametrize("name", [pytest.param("hunyuan", marks=needs_text_valid), "wan", "flux"])
def test_full_windows_step_equals_diffusers(name):
    model = tiny(name)
    valid = [7, 16] if name == "hunyuan" else None
    batch = 2 if name == "hunyuan" else 1
    arguments = models.inputs(name, model, tiny=True, batch=batch, text_valid=valid)
    with torch.no_grad():
        reference = model(**arguments).sample
        sd.enable_sta(model, strategy=FULL, tile=TINY_TILES[name])
        try:
            output = model(**arguments).sample
        finally:
            sd.disable_sta(model)
    assert torch.isfinite(output).all()
    assert relative_error(output, reference) < 1e-4


@pytest.mark.parametrize("name", [pytest.param("hunyuan", marks=needs_text_valid), "wan", "flux"])
def test_sparse_windows_change_the_step(name):
    """The processors really run STA: a sparse window moves the output away from dense attention."""
    model = tiny(name)
    arguments = models.inputs(name, model, tiny=True)
    window = models.problem(name, True)["window"]
    with torch.no_grad():
        reference = model(**arguments).sample
        sd.enable_sta(model, strategy=window, tile=TINY_TILES[name])
        try:
            output = model(**arguments).sample
        finally:
            sd.disable_sta(model)
    assert torch.isfinite(output).all()
    assert relative_error(output, reference) > 1e-3


# MARK: sparse windows: one layer against SDPA under the explicit mask


def _layer_case(name):
    if name == "hunyuan":
        model = tiny(name, num_attention_heads=3)
        windows = [(3, 1, 3), (1, 3, 1), (5, 1, 1)]
        return model, windows, [7, 16], 2
    if name == "wan":
        model = tiny(name, num_attention_heads=3)
        return model, [(1, 3, 1), (3, 1, 3), (1, 1, 1)], None, 1
    model = tiny(name, num_attention_heads=3)
    return model, [(3, 3), (1, 3), (5, 1)], None, 1


@pytest.mark.parametrize("name", [pytest.param("hunyuan", marks=needs_text_valid), "wan", "flux"])
@pytest.mark.parametrize("which", ["double", "single"])
def test_one_layer_equals_sdpa_under_the_explicit_mask(name, which):
    if name == "wan" and which == "single":
        pytest.skip("Wan has one block type")
    model, windows, valids, batch = _layer_case(name)
    tile = TINY_TILES[name]
    if name == "wan":
        module = model.blocks[1].attn1
    elif which == "double":
        module = model.transformer_blocks[0].attn
    else:
        module = model.single_transformer_blocks[-1].attn
    arguments = models.inputs(name, model, tiny=True, batch=batch, text_valid=valids)
    calls, handle = record_attention_inputs(module)
    try:
        with torch.no_grad():
            context = sd.enable_sta(model, strategy=Uniform(windows), tile=tile)
            model(**arguments)
            args, kwargs = calls[-1]
            original = dict(getattr(model, sd._ATTRIBUTE).originals)[module]
            ours = module(*args, **kwargs)
            canvas, text = context.canvas, context.text or 0
            valid = valids or [text] * batch
            mask = head_masks(canvas, tile, text, valid, windows, text_first=(name == "flux"))
            import inspect

            bound = dict(inspect.signature(original.__call__).bind(module, *args, **kwargs).arguments)
            bound.pop("attn")
            bound["attention_mask"] = mask
            theirs = original(module, **bound)
    finally:
        handle.remove()
        sd.disable_sta(model)
    if isinstance(ours, tuple):
        video_ours, text_ours = ours
        video_theirs, text_theirs = theirs
        assert relative_error(video_ours, video_theirs) < 1e-5
        for row, n in enumerate(valid):  # padding text rows are not compared (no meaningful output)
            assert relative_error(text_ours[row, :n], text_theirs[row, :n]) < 1e-5
    else:
        assert relative_error(ours, theirs) < 1e-5


# MARK: the permutation


@pytest.mark.parametrize("canvas,tile", [((5, 7, 9), (2, 2, 4)), ((30, 48, 80), (6, 8, 8)), ((12, 16), (2, 4)),
                                         ((13, 20), (8, 16)), ((21, 45, 80), (6, 8, 8))])
def test_device_tile_order_equals_the_library(canvas, tile):
    from sta._diffusers_layout import raster_to_tile_order

    plan = sta.Plan(canvas, tile, text=0, windows=[tuple(1 for _ in canvas)])
    assert raster_to_tile_order(canvas, tile).tolist() == plan.sequence_index().tolist()


@pytest.mark.parametrize("text_first", [False, True])
@pytest.mark.parametrize("head_dim,dtype", [(5, torch.float32), (8, torch.float32), (8, torch.bfloat16)])
def test_joint_layout_round_trip(text_first, head_dim, dtype):
    """Both gather paths (8-byte words where the head dim allows, elements otherwise)."""
    from sta._diffusers_layout import JointLayout

    layout = JointLayout((3, 5, 6), (2, 2, 4), 4, text_first, "cpu")
    x = torch.randn(2, layout.model_length, 3, head_dim).to(dtype)
    tiled = layout.to_tiles(x)
    assert tiled.shape == (2, 3, layout.tile_length, head_dim) and tiled.is_contiguous() and tiled.dtype == dtype
    positions = layout.model_to_tile
    assert torch.equal(tiled[:, :, positions].transpose(1, 2), x)
    assert torch.equal(layout.from_tiles(tiled), x)
    text_part = tiled[:, :, layout.padded_video:].transpose(1, 2)
    expected = x[:, :4] if text_first else x[:, -4:]
    assert torch.equal(text_part, expected)


# MARK: enable / disable, steps, plans


def test_enable_disable_restores_the_processor_objects():
    model = tiny("hunyuan")
    before = {name: module.processor for name, module in model.named_modules() if hasattr(module, "processor")}
    hooks = len(model._forward_pre_hooks)
    sd.enable_sta(model, strategy=(3, 3, 3), tile=(1, 2, 2))
    replaced = [name for name, module in model.named_modules()
                if hasattr(module, "processor") and module.processor is not before[name]]
    assert len(replaced) == 3  # 1 double + 2 single blocks; the token refiner stays dense
    assert all("refiner" not in name for name in replaced)
    sd.enable_sta(model, strategy=FULL, tile=(1, 2, 2))  # enabling again replaces the first set-up
    sd.disable_sta(model)
    after = {name: module.processor for name, module in model.named_modules() if hasattr(module, "processor")}
    assert all(after[name] is before[name] for name in before)
    assert len(model._forward_pre_hooks) == hooks
    assert not sd.is_enabled(model)


def test_wan_cross_attention_keeps_diffusers_processor():
    model = tiny("wan")
    cross = [block.attn2.processor for block in model.blocks]
    sd.enable_sta(model, strategy=(1, 3, 1), tile=(2, 2, 4))
    try:
        assert all(block.attn2.processor is p for block, p in zip(model.blocks, cross))
        assert all(type(block.attn1.processor).__name__ == "WanSTAProcessor" for block in model.blocks)
    finally:
        sd.disable_sta(model)


class RecordingStrategy(Uniform):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked = []

    def windows(self, step, layer, heads):
        self.asked.append((step, layer))
        return super().windows(step, layer, heads)


def test_step_index_follows_the_scheduler_and_plans_are_shared():
    from diffusers import FlowMatchEulerDiscreteScheduler

    model = tiny("wan")
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(4)
    strategy = FullFirst(2, Uniform((1, 3, 1)))
    context = sd.enable_sta(model, strategy=strategy, tile=(2, 2, 4), scheduler=scheduler)
    arguments = models.inputs("wan", model, tiny=True)
    latents = arguments.pop("hidden_states")
    steps = []
    try:
        with torch.no_grad():
            for t in scheduler.timesteps:
                arguments["timestep"] = t.expand(1)
                prediction = model(hidden_states=latents, **arguments).sample
                steps.append(context.step)
                latents = scheduler.step(prediction, t, latents).prev_sample
    finally:
        sd.disable_sta(model)
    assert steps == [0, 1, 2, 3]
    assert context.prepared_window_sets == 2  # full, then (1, 3, 1), for 4 steps × 2 layers


def test_call_counter_and_set_step():
    model = tiny("wan")
    strategy = RecordingStrategy((1, 3, 1))
    context = sd.enable_sta(model, strategy=FullFirst(1, strategy), tile=(2, 2, 4), calls_per_step=2)
    arguments = models.inputs("wan", model, tiny=True)
    try:
        with torch.no_grad():
            seen = []
            for _ in range(4):
                model(**arguments)
                seen.append(context.step)
            sd.set_step(model, 7)
            model(**arguments)
            seen.append(context.step)
            assert len(context.plans) == 2
    finally:
        sd.disable_sta(model)
    assert seen == [0, 0, 1, 1, 7]


def test_json_strategy_applies_per_step_layer_head(tmp_path):
    model = tiny("wan", num_attention_heads=2)
    grid = (3, 4, 3)  # canvas (5, 7, 9) in tiles of (2, 2, 4)
    entries = {}
    for step in range(2):
        for layer in range(2):
            for head in range(2):
                entries[(step, layer, head)] = list(grid) if step == 0 else [1 + 2 * head, 3, 1]
    path = tmp_path / "strategy.json"
    MaskStrategy(entries).save(path)
    context = sd.enable_sta(model, strategy=str(path), tile=(2, 2, 4))
    arguments = models.inputs("wan", model, tiny=True)
    try:
        with torch.no_grad():
            model(**arguments)
            assert context.windows(1, 2) == ((3, 4, 3), (3, 4, 3))
            model(**arguments)
            assert context.windows(1, 2) == ((1, 3, 1), (3, 3, 1))
            with pytest.raises(ValueError, match="no entries for step 2"):
                model(**arguments)
    finally:
        sd.disable_sta(model)


# MARK: errors


def test_unknown_model_is_refused():
    with pytest.raises(TypeError, match="does not know Linear"):
        sd.enable_sta(torch.nn.Linear(2, 2))


def test_replaced_processor_is_refused():
    from diffusers.models.attention_processor import AttnProcessor

    model = tiny("flux")
    model.single_transformer_blocks[0].attn.processor = AttnProcessor()
    with pytest.raises(TypeError, match="replaces only diffusers' default"):
        sd.enable_sta(model, strategy=(3, 3), tile=(2, 4))
    assert not sd.is_enabled(model)


def test_latent_not_matching_the_strategy_canvas():
    model = tiny("wan")
    sd.enable_sta(model, strategy=Uniform((1, 3, 1), canvas=(5, 7, 11)), tile=(2, 2, 4))
    try:
        with pytest.raises(ValueError, match=r"canvas of 5×7×9 tokens, but the strategy was made for 5×7×11"):
            with torch.no_grad():
                model(**models.inputs("wan", model, tiny=True))
    finally:
        sd.disable_sta(model)


def test_even_window_smaller_than_the_axis():
    model = tiny("wan")
    sd.enable_sta(model, strategy=(2, 3, 1), tile=(2, 2, 4))
    try:
        with pytest.raises(ValueError, match="size 2 on axis 0 is even and smaller than the axis' 3 tiles"):
            with torch.no_grad():
                model(**models.inputs("wan", model, tiny=True))
    finally:
        sd.disable_sta(model)


def test_missing_layers_and_heads_are_reported_at_enable():
    model = tiny("wan", num_attention_heads=2)
    only_layer_0 = MaskStrategy({(0, 0, 0): [1, 1, 1], (0, 0, 1): [1, 1, 1]})
    with pytest.raises(ValueError, match=r"no entries for layer 1 at step 0 \(layers present at that step: 0\)"):
        sd.enable_sta(model, strategy=only_layer_0, tile=(2, 2, 4))
    one_head = MaskStrategy({(0, 0, 0): [1, 1, 1], (0, 1, 0): [1, 1, 1]})
    with pytest.raises(ValueError, match=r"lacks heads 1; the model has 2 heads"):
        sd.enable_sta(model, strategy=one_head, tile=(2, 2, 4))
    assert not sd.is_enabled(model)


@needs_text_valid
def test_text_before_video_is_refused():
    model = tiny("hunyuan")
    module = model.single_transformer_blocks[0].attn
    calls, handle = record_attention_inputs(module)
    sd.enable_sta(model, strategy=FULL, tile=(1, 2, 2))
    try:
        with torch.no_grad():
            model(**models.inputs("hunyuan", model, tiny=True))
            args, kwargs = calls[-1]
            mask = kwargs["attention_mask"].clone()
            text = kwargs["encoder_hidden_states"].shape[1]
            # the same mask with the text (16 tokens, 10 real) first: padding falls among the video tokens
            mask[..., :] = False
            mask[..., :10] = True
            mask[..., text:] = True
            kwargs["attention_mask"] = mask
            with pytest.raises(ValueError, match="puts the .* video tokens first and the 16 text tokens after"):
                module(*args, **kwargs)
    finally:
        handle.remove()
        sd.disable_sta(model)


def test_processor_outside_a_transformer_call():
    model = tiny("flux")
    sd.enable_sta(model, strategy=(3, 3), tile=(2, 4))
    try:
        block = model.single_transformer_blocks[0]
        with pytest.raises(RuntimeError, match="call the transformer itself"):
            block.attn(torch.randn(1, 20, model.inner_dim))
    finally:
        sd.disable_sta(model)


@needs_text_valid
def test_functional_sta_attention_matches_processor_free_reference():
    canvas, tile, text = (3, 5, 6), (2, 2, 4), 4
    windows = [(1, 3, 1), (3, 1, 1)]
    q, k, v = (torch.randn(2, math.prod(canvas) + text, 2, 16) for _ in range(3))
    out = sd.sta_attention(q, k, v, canvas=canvas, tile=tile, windows=windows, text=text, text_valid=3)
    mask = head_masks(canvas, tile, text, [3, 3], windows)
    reference = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask).transpose(1, 2)
    rows = math.prod(canvas) + 3
    assert relative_error(out[:, :rows], reference[:, :rows]) < 1e-5


def test_per_layer_strategy_uses_distinct_plans():
    model = tiny("wan")
    context = sd.enable_sta(model, strategy=PerLayer({0: (1, 3, 1), 1: (3, 1, 1)}), tile=(2, 2, 4))
    try:
        with torch.no_grad():
            model(**models.inputs("wan", model, tiny=True))
        assert context.windows(0, 4) != context.windows(1, 4)
        assert context.prepared_window_sets == 2
    finally:
        sd.disable_sta(model)


class PipelineLike:
    """What enable_sta reads from a diffusers pipeline: .transformer, .scheduler and .components."""

    def __init__(self, transformer, scheduler):
        self.transformer = transformer
        self.scheduler = scheduler

    @property
    def components(self):
        return {"transformer": self.transformer, "scheduler": self.scheduler}


def test_pipeline_scheduler_gives_the_step_with_two_calls_per_step():
    """Classifier-free guidance as separate conditional and unconditional calls: both calls of a step get the
    step the scheduler is at."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    model = tiny("wan")
    pipe = PipelineLike(model, FlowMatchEulerDiscreteScheduler(shift=3.0))
    context = sd.enable_sta(pipe, strategy=FullFirst(1, Uniform((1, 3, 1))), tile=(2, 2, 4))
    assert context.scheduler is pipe.scheduler and sd.context(model) is context
    arguments = models.inputs("wan", model, tiny=True)
    latents = arguments.pop("hidden_states")
    steps = []
    pipe.scheduler.set_timesteps(3)
    try:
        with torch.no_grad():
            for t in pipe.scheduler.timesteps:
                arguments["timestep"] = t.expand(1)
                conditional = model(hidden_states=latents, **arguments).sample
                steps.append(context.step)
                unconditional = model(hidden_states=latents, **arguments).sample
                steps.append(context.step)
                latents = pipe.scheduler.step(unconditional + 2 * (conditional - unconditional), t, latents).prev_sample
    finally:
        sd.disable_sta(pipe)
    assert steps == [0, 0, 1, 1, 2, 2]
    assert not sd.is_enabled(model)


def test_flux_image_ids_in_bfloat16_are_read_exactly():
    """bf16 holds row and column indices up to 256 exactly but not token positions past 256: a 40×48 grid
    of bf16 ids must still read as one image in raster order."""
    from sta._diffusers_context import STAContext

    height, width = 40, 48
    ids = torch.zeros(height, width, 3)
    ids[..., 1] = torch.arange(height)[:, None]
    ids[..., 2] = torch.arange(width)[None, :]
    context = STAContext.__new__(STAContext)
    context._image_ids = None
    context.validate = True
    assert context.image_canvas(ids.reshape(-1, 3).to(torch.bfloat16), height * width) == (height, width)
    shuffled = ids.reshape(-1, 3).flip(0).contiguous()
    with pytest.raises(ValueError, match="raster order"):
        context.image_canvas(shuffled.to(torch.bfloat16), height * width)
