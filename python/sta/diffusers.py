"""Sliding tile attention inside diffusers 0.42 pipelines: one call to switch it on, one to switch it off.

    import sta.diffusers
    from sta.strategy import Uniform, FullFirst

    pipe = HunyuanVideoPipeline.from_pretrained(...)
    sta.diffusers.enable_sta(pipe, strategy=FullFirst(15, Uniform((3, 3, 3))))
    video = pipe(prompt, num_inference_steps=50).frames
    sta.diffusers.disable_sta(pipe)          # diffusers' own processors again, the same objects

Supported transformers (their default processors are replaced; anything else raises):

* ``HunyuanVideoTransformer3DModel``: the joint attention of the 20 double-stream and 40 single-stream
  blocks (layers 0..19, 20..59). Video tokens in raster order, then the text; the text padding comes as
  diffusers' [B, 1, 1, N] boolean mask, from which the per-row valid lengths are computed on the device
  (one int32 [B] tensor per transformer call, no host read). The token refiner's text-only attention stays
  dense. Default tile (6, 8, 8).
* ``WanTransformer3DModel``: each block's self-attention ``attn1`` (layer = block index); the
  cross-attention ``attn2`` keeps diffusers' processor. Default tile (6, 8, 8); canvases that the tile does
  not divide (Wan 2.1 720p: 21×45×80) are padded with holes.
* ``FluxTransformer2DModel``: 2-D; the text tokens come *before* the image tokens, and the image grid is
  read from ``img_ids`` (one image in raster order). Layers: double-stream blocks 0..18, single-stream
  19..56. Default tile (8, 16).

**Canvas.** A forward pre-hook on the transformer reads the latent's shape and the model's patch size (FLUX:
the image position ids) at every call, so the canvas (T, H, W) or (H, W) in tokens is never typed. A
strategy that names a canvas rejects a latent of another size.

**Step.** With a pipeline (or ``scheduler=``), the step is the position of the current timestep in the
scheduler's ``timesteps``, as the scheduler tracks it (``scheduler.step_index``; before the first
``scheduler.step`` its ``begin_index``, else a look-up of the timestep value). With a bare transformer, the
step is the number of transformer calls so far divided by ``calls_per_step`` (2 when classifier-free
guidance runs the conditional and unconditional passes as separate calls); ``set_step`` pins it.

**Plans.** One ``sta.Plan`` per distinct (canvas, tile, text count, per-head windows), shared by every step
and layer with that window set. On the first call with a canvas (``prepare="all"``, the default) every
window set the strategy uses is planned and, on CUDA, run once on zeros (kernel compiled, tables
uploaded), so no synchronous upload happens later inside the denoising loop. ``prepare="lazy"`` builds
plans on first use instead.

**Cost per attention call** beyond the kernel: one gather per q, k and v from the model's [B, S, H, D]
into the kernel's [B, H, S', D] tile order (transpose and permutation in one pass) and one gather of the
output back: four passes over B·S·H·D elements. The kernels need the contiguous tile-order layout, so this
copy is the price of keeping diffusers' blocks unchanged.
"""

from __future__ import annotations

from typing import Sequence

from .strategy import FULL, as_strategy
from ._diffusers_context import STAContext
from ._diffusers_layout import JointLayout
from ._diffusers_models import SUPPORTED, spec_for
from ._diffusers_plans import PlanCache, attend

__all__ = [
    "enable_sta",
    "disable_sta",
    "set_strategy",
    "load_strategy",
    "set_step",
    "context",
    "is_enabled",
    "sta_attention",
    "SUPPORTED",
    "STAContext",
    "FULL",
]

_ATTRIBUTE = "_sta_state"


class _State:
    """What ``enable_sta`` changed on a transformer, so that ``disable_sta`` can undo it exactly."""

    def __init__(self, context, originals, hook):
        self.context = context
        self.originals = originals  # [(attention module, original processor)]
        self.hook = hook


def _transformer_and_scheduler(pipe_or_transformer, scheduler):
    transformer = getattr(pipe_or_transformer, "transformer", None)
    if transformer is not None and hasattr(pipe_or_transformer, "components"):
        if scheduler is None:
            scheduler = getattr(pipe_or_transformer, "scheduler", None)
        return transformer, scheduler
    return pipe_or_transformer, scheduler


def enable_sta(pipe_or_transformer, strategy=(3, 3, 3), *, tile: Sequence[int] | None = None,
               kernel: str = "auto", scheduler=None, prepare: str = "all", validate: bool = True,
               calls_per_step: int = 1, capture=None) -> STAContext:
    """Replaces the supported attention processors of a pipeline's transformer (or of a transformer) by STA
    processors and returns the ``STAContext`` they share.

    strategy: a ``sta.strategy.WindowStrategy``, a mask-strategy JSON path, one window in tiles such as
        (3, 3, 3), a list of per-head windows, or ``FULL``.
    tile: tokens per tile; default the strategy's, else the model's ((6, 8, 8) video, (8, 16) FLUX).
    kernel: "auto", "portable" or "hopper" (CUDA).
    scheduler: the scheduler that gives the step index (taken from the pipeline when one is given).
    prepare: "all" plans (and on CUDA warms up) every window set at the first call; "lazy" on first use.
    validate: check the text mask (HunyuanVideo) and image ids (FLUX) once per tensor (one device read).
    calls_per_step: transformer calls per denoising step for the call-counting step index.
    capture: a ``sta.capture.Capture`` recording tile-order q, k, v of chosen steps and layers.

    Calling it again on an enabled model first restores the original processors.
    """
    transformer, scheduler = _transformer_and_scheduler(pipe_or_transformer, scheduler)
    spec = spec_for(transformer)
    strategy = as_strategy(strategy)
    if getattr(transformer, _ATTRIBUTE, None) is not None:
        disable_sta(transformer)
    context = STAContext(transformer, spec, strategy, tile=tile, kernel=kernel, scheduler=scheduler,
                         prepare=prepare, validate=validate, calls_per_step=calls_per_step, capture=capture)
    originals = []
    for layer, module in context.layers:
        original = module.processor
        name = type(original).__name__
        if name not in spec.processor_classes:
            raise TypeError(
                f"{spec.name} layer {layer}: its attention processor is {name}; sta.diffusers replaces only "
                f"diffusers' default ({', '.join(spec.processor_classes)}). Restore it with "
                "transformer.set_default_attn_processor() or remove the adapter first")
        originals.append((module, original))
    for (layer, module), (_, original) in zip(context.layers, originals):
        module.set_processor(spec.processor(context, layer, original))
    hook = transformer.register_forward_pre_hook(context.pre_hook, with_kwargs=True)
    setattr(transformer, _ATTRIBUTE, _State(context, originals, hook))
    return context


def disable_sta(pipe_or_transformer) -> None:
    """Puts back the very processor objects ``enable_sta`` replaced and removes the pre-hook. A model
    without STA is left alone."""
    transformer, _ = _transformer_and_scheduler(pipe_or_transformer, None)
    state = getattr(transformer, _ATTRIBUTE, None)
    if state is None:
        return
    for module, original in state.originals:
        module.set_processor(original)
    state.hook.remove()
    state.context.plans.clear()
    delattr(transformer, _ATTRIBUTE)


def context(pipe_or_transformer) -> STAContext:
    """The ``STAContext`` of an enabled model (raises if STA is not enabled)."""
    transformer, _ = _transformer_and_scheduler(pipe_or_transformer, None)
    state = getattr(transformer, _ATTRIBUTE, None)
    if state is None:
        raise ValueError(f"STA is not enabled on this {type(transformer).__name__}; call sta.diffusers.enable_sta first")
    return state.context


def is_enabled(pipe_or_transformer) -> bool:
    transformer, _ = _transformer_and_scheduler(pipe_or_transformer, None)
    return getattr(transformer, _ATTRIBUTE, None) is not None


def set_strategy(pipe_or_transformer, strategy) -> STAContext:
    """Loads another strategy (an object, a JSON path, a window) into the enabled processors; plans are
    prepared again at the next call."""
    ctx = context(pipe_or_transformer)
    strategy = as_strategy(strategy)
    if strategy.tile is not None and tuple(strategy.tile) != ctx.tile:
        raise ValueError(f"the strategy is written for tile {strategy.tile}; the processors use {ctx.tile}")
    previous = ctx.strategy
    ctx.strategy = strategy
    try:
        ctx._check_structure()
    except Exception:
        ctx.strategy = previous
        raise
    ctx._resolved.clear()
    ctx._prepared.clear()
    return ctx


def load_strategy(pipe_or_transformer, path, *, canvas: Sequence[int] | None = None) -> STAContext:
    """Reads a mask-strategy JSON (what ``sta search`` writes) into the enabled processors: the same as
    ``set_strategy(model, sta.strategy.load_strategy(path, canvas=canvas))``, with the processors' tile."""
    from .strategy import load_strategy as read

    return set_strategy(pipe_or_transformer, read(path, canvas=canvas))


def set_step(pipe_or_transformer, step: int | None) -> None:
    """Pins the step index the next calls use (None: back to the scheduler or the call counter)."""
    ctx = context(pipe_or_transformer)
    if step is not None and int(step) < 0:
        raise ValueError(f"step is {step}; it must be 0 or more")
    ctx.pinned_step = None if step is None else int(step)


_functional_plans = PlanCache()
_functional_layouts: dict = {}


def sta_attention(query, key, value, *, canvas: Sequence[int], tile: Sequence[int], windows, text: int = 0,
                  text_valid=None, text_first: bool = False, kernel: str = "auto"):
    """STA on [B, S, H, D] tensors in a model's token order (video in raster order over ``canvas``, ``text``
    text tokens after it, or before it with ``text_first``); returns [B, S, H, D] in the same order.

    For a custom processor: ``windows`` is one window in tiles or one per head (FULL allowed);
    ``text_valid`` None, an int, or an int32 [B] tensor of per-row valid text lengths. Plans and indices are
    cached across calls.
    """
    from .strategy import _head_windows, resolve_window

    heads = query.shape[2]
    grid = [-(-int(c) // int(t)) for c, t in zip(canvas, tile)]
    spec = _head_windows(windows, "windows")
    per_head = spec if isinstance(spec, list) else [spec] * heads
    if len(per_head) != heads:
        raise ValueError(f"{len(per_head)} windows were given for {heads} heads")
    resolved = tuple(resolve_window(w, grid, where=f"the window of head {h}") for h, w in enumerate(per_head))
    plan = _functional_plans.get(tuple(canvas), tuple(tile), text, resolved)
    layout_key = (tuple(canvas), tuple(tile), int(text), bool(text_first), str(query.device))
    layout = _functional_layouts.get(layout_key)
    if layout is None:
        layout = _functional_layouts[layout_key] = JointLayout(canvas, tile, text, text_first, query.device)
    tiled = [layout.to_tiles(x) for x in (query, key, value)]
    return layout.from_tiles(attend(*tiled, plan, text_valid=text_valid, kernel=kernel))
