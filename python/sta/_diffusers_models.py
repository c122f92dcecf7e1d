"""What ``sta.diffusers`` knows about each supported diffusers transformer: which attention modules get
STA (and their layer numbers), where the text tokens sit, how to read the canvas from the inputs, and the
default tile.

Layer numbers follow FastVideo's mask strategies: the double-stream blocks first, then the single-stream
blocks (HunyuanVideo: 0..19 then 20..59; FLUX.1: 0..18 then 19..56); Wan: block i's self-attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["ModelSpec", "spec_for", "SUPPORTED"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    default_tile: tuple[int, ...]
    text_first: bool
    #: (transformer) -> [(layer, attention module)]
    layers: Callable
    #: the processor class names STA replaces (anything else is refused)
    processor_classes: tuple[str, ...]
    #: (transformer, bound forward arguments, context) -> (canvas in tokens, text count, description)
    canvas: Callable
    processor: Callable  # (context, layer, original) -> processor


def _hunyuan_layers(model):
    double = [(i, block.attn) for i, block in enumerate(model.transformer_blocks)]
    offset = len(double)
    return double + [(offset + j, block.attn) for j, block in enumerate(model.single_transformer_blocks)]


def _video_canvas(latent, patch, what):
    if latent is None or getattr(latent, "ndim", 0) != 5:
        shape = None if latent is None else tuple(latent.shape)
        raise ValueError(f"{what}: hidden_states has shape {shape}; expected a 5-D latent [B, C, F, H, W]")
    _, _, frames, height, width = latent.shape
    canvas = (frames // patch[0], height // patch[1], width // patch[2])
    description = f"latent {list(latent.shape)} with patch {tuple(patch)}"
    return canvas, description


def _hunyuan_canvas(model, arguments, context):
    config = model.config
    patch = (config.patch_size_t, config.patch_size, config.patch_size)
    canvas, description = _video_canvas(arguments.get("hidden_states"), patch, "HunyuanVideoTransformer3DModel")
    text = arguments.get("encoder_hidden_states")
    return canvas, (0 if text is None else int(text.shape[1])), description


def _wan_layers(model):
    return [(i, block.attn1) for i, block in enumerate(model.blocks)]


def _wan_canvas(model, arguments, context):
    canvas, description = _video_canvas(
        arguments.get("hidden_states"), tuple(model.config.patch_size), "WanTransformer3DModel")
    return canvas, 0, description


def _flux_layers(model):
    double = [(i, block.attn) for i, block in enumerate(model.transformer_blocks)]
    offset = len(double)
    return double + [(offset + j, block.attn) for j, block in enumerate(model.single_transformer_blocks)]


def _flux_canvas(model, arguments, context):
    hidden = arguments.get("hidden_states")
    ids = arguments.get("img_ids")
    text = arguments.get("encoder_hidden_states")
    if hidden is None or ids is None or hidden.ndim != 3:
        raise ValueError("FluxTransformer2DModel: expected hidden_states [B, S, C] (packed latents) and img_ids")
    canvas = context.image_canvas(ids, int(hidden.shape[1]))
    description = f"packed latent {list(hidden.shape)} with img_ids of a {canvas[0]}×{canvas[1]} grid"
    return canvas, (0 if text is None else int(text.shape[1])), description


def _registry():
    from . import _diffusers_processors as _processors

    return {
        "HunyuanVideoTransformer3DModel": ModelSpec(
            "HunyuanVideoTransformer3DModel", (6, 8, 8), False, _hunyuan_layers, ("HunyuanVideoAttnProcessor2_0",),
            _hunyuan_canvas, _processors.HunyuanVideoSTAProcessor),
        "WanTransformer3DModel": ModelSpec(
            "WanTransformer3DModel", (6, 8, 8), False, _wan_layers, ("WanAttnProcessor", "WanAttnProcessor2_0"),
            _wan_canvas, _processors.WanSTAProcessor),
        "FluxTransformer2DModel": ModelSpec(
            "FluxTransformer2DModel", (8, 16), True, _flux_layers, ("FluxAttnProcessor", "FluxAttnProcessor2_0"),
            _flux_canvas, _processors.FluxSTAProcessor),
    }


SUPPORTED = ("HunyuanVideoTransformer3DModel", "WanTransformer3DModel", "FluxTransformer2DModel")


def spec_for(model) -> ModelSpec:
    """The spec of ``model``'s class (or of the first supported class it derives from)."""
    registry = _registry()
    for cls in type(model).__mro__:
        if cls.__name__ in registry and cls.__module__.startswith("diffusers"):
            return registry[cls.__name__]
    raise TypeError(
        f"sta.diffusers does not know {type(model).__name__} ({type(model).__module__}); supported transformers: "
        f"{', '.join(SUPPORTED)} (give the pipeline or its .transformer)")
