"""Random-weight diffusers transformers for benchmarks, demos and tests: HunyuanVideo 13B, Wan 2.1 14B and
FLUX.1 (dev) at their published configurations, or tiny versions of the same architectures for the CPU.

``build(name, tiny=..., device=..., dtype=...)`` constructs the model directly on the device in the target
dtype with parameter initialisation switched off (no slow CPU init, no fp32 copy), then fills every
parameter in place with scaled Gaussian noise (weights N(0, 1/fan_in), norms 1, biases 0), which keeps
activations finite through all layers. ``inputs(name, model, ...)`` makes one denoising step's arguments.
"""

from __future__ import annotations

import contextlib
import math

import torch

MODELS = ("hunyuan", "wan", "flux")

CLASSES = {
    "hunyuan": "HunyuanVideoTransformer3DModel",
    "wan": "WanTransformer3DModel",
    "flux": "FluxTransformer2DModel",
}

# Published configurations (diffusers' names).
FULL = {
    "hunyuan": dict(),  # the class defaults are HunyuanVideo 13B
    "wan": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    "flux": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                 num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                 axes_dims_rope=(16, 56, 56)),
}

TINY = {
    "hunyuan": dict(in_channels=4, out_channels=4, num_attention_heads=24, attention_head_dim=8, num_layers=1,
                    num_single_layers=2, num_refiner_layers=1, patch_size=2, patch_size_t=1, text_embed_dim=32,
                    pooled_projection_dim=16, rope_axes_dim=(2, 2, 4)),
    "wan": dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=12, in_channels=4, out_channels=4,
                text_dim=32, freq_dim=16, ffn_dim=64, num_layers=2, rope_max_seq_len=64),
    "flux": dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16,
                 num_attention_heads=4, joint_attention_dim=32, pooled_projection_dim=16, guidance_embeds=True,
                 axes_dims_rope=(4, 6, 6)),
}

# One denoising step's problem: latent shape (video: [B, C, F, H, W]; FLUX: the packed grid (H, W)), text
# tokens, tile, and the uniform STA window of the benchmark.
PROBLEMS = {
    "hunyuan": dict(latent=(16, 30, 96, 160), text=256, tile=(6, 8, 8), window=(3, 3, 3)),
    "wan": dict(latent=(16, 21, 90, 160), text=512, tile=(6, 8, 8), window=(3, 3, 3)),
    "flux": dict(grid=(128, 128), text=512, tile=(8, 16), window=(5, 5)),
}
TINY_PROBLEMS = {
    "hunyuan": dict(latent=(4, 5, 12, 16), text=16, tile=(1, 2, 2), window=(3, 3, 3)),
    "wan": dict(latent=(4, 5, 14, 18), text=8, tile=(2, 2, 4), window=(1, 3, 1)),
    "flux": dict(grid=(12, 16), text=8, tile=(2, 4), window=(3, 3)),
}


def model_class(name: str):
    import diffusers

    if name not in CLASSES:
        raise ValueError(f"model {name!r}; allowed: {', '.join(MODELS)}")
    return getattr(diffusers, CLASSES[name])


@contextlib.contextmanager
def _no_parameter_init():
    """torch.nn.init's in-place initialisers become no-ops (modules keep their uninitialised storage)."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


@contextlib.contextmanager
def _default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@torch.no_grad()
def randomize_(model, seed: int = 0) -> None:
    """Weights N(0, 1/fan_in) (fan_in = elements per output row), 1-D weights 1 (norms), biases 0."""
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name, parameter in model.named_parameters():
        if parameter.ndim >= 2:
            fan_in = parameter[0].numel()
            parameter.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        elif name.endswith("weight"):
            parameter.fill_(1.0)
        else:
            parameter.zero_()


def build(name: str, *, tiny: bool = False, device="cpu", dtype=torch.float32, seed: int = 0, **overrides):
    """The model with random weights, constructed on ``device`` in ``dtype`` without parameter init."""
    config = dict(TINY[name] if tiny else FULL[name])
    config.update(overrides)
    cls = model_class(name)
    with _no_parameter_init(), _default_dtype(dtype), torch.device(device):
        model = cls(**config)
    randomize_(model, seed)
    return model.eval().requires_grad_(False)


def problem(name: str, tiny: bool) -> dict:
    return dict((TINY_PROBLEMS if tiny else PROBLEMS)[name])


def inputs(name: str, model, *, tiny: bool = False, batch: int = 1, text_valid=None, device="cpu",
           dtype=torch.float32, seed: int = 1, timestep: float = 0.9) -> dict:
    """Keyword arguments of one transformer call (the pipeline's shapes). ``text_valid``: None (all text
    real) or one valid length per batch row (HunyuanVideo's encoder_attention_mask)."""
    p = problem(name, tiny)
    config = model.config
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    text = p["text"]
    if name == "hunyuan":
        mask = torch.ones(batch, text, dtype=torch.bool)
        if text_valid is not None:
            for row, valid in enumerate(text_valid):
                mask[row, int(valid):] = False
        return dict(
            hidden_states=randn(batch, *p["latent"]),
            timestep=torch.full((batch,), timestep * 1000, device=device, dtype=dtype),
            encoder_hidden_states=randn(batch, text, config.text_embed_dim),
            encoder_attention_mask=mask.to(device),
            pooled_projections=randn(batch, config.pooled_projection_dim),
            guidance=torch.full((batch,), 6000.0, device=device, dtype=dtype),
            return_dict=True)
    if name == "wan":
        return dict(
            hidden_states=randn(batch, *p["latent"]),
            timestep=torch.full((batch,), timestep * 1000, device=device, dtype=dtype),
            encoder_hidden_states=randn(batch, text, config.text_dim),
            return_dict=True)
    height, width = p["grid"]
    ids = torch.zeros(height, width, 3)
    ids[..., 1] = torch.arange(height)[:, None]
    ids[..., 2] = torch.arange(width)[None, :]
    arguments = dict(
        hidden_states=randn(batch, height * width, config.in_channels),
        encoder_hidden_states=randn(batch, text, config.joint_attention_dim),
        pooled_projections=randn(batch, config.pooled_projection_dim),
        timestep=torch.full((batch,), timestep, device=device, dtype=dtype),
        img_ids=ids.reshape(-1, 3).to(device=device, dtype=dtype),
        txt_ids=torch.zeros(text, 3, device=device, dtype=dtype),
        return_dict=True)
    if config.guidance_embeds:
        arguments["guidance"] = torch.full((batch,), 3.5, device=device, dtype=dtype)
    return arguments


def attention_layers(name: str, model) -> int:
    """Attention calls per step that STA replaces."""
    if name == "wan":
        return len(model.blocks)
    return len(model.transformer_blocks) + len(model.single_transformer_blocks)
