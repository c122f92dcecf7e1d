"""Context-parallel STA inside diffusers (0.42): HunyuanVideo and Wan 2.1 transformers.

    from diffusers import ContextParallelConfig
    from sta.parallel.diffusers import enable_sta_parallelism

    torch.distributed.init_process_group("nccl")            # torchrun
    state = enable_sta_parallelism(transformer, windows=[(3, 3, 3)] * 24, tile=(6, 8, 8),
                                   config=ContextParallelConfig(ulysses_degree=world_size))
    output = transformer(**inputs)                          # every rank gets the whole output

What it does to the model:

* **Processors.** Every STA attention gets a processor that runs ``UlyssesAttention`` (HunyuanVideo: the
  joint attention of the 20 dual-stream and 40 single-stream blocks, text replicated; Wan: the
  self-attention ``attn1`` of each block; Wan's cross-attention keeps diffusers' processor and runs
  locally: its keys are the replicated text).
* **Tile order.** Hooks permute the patchified hidden states and the rotary tables from raster order to
  tile order (zero holes) once before the first block and back after ``proj_out``: the blocks work in
  tile order and no attention call permutes.
* **Sharding** (with ``config``): the model's context-parallel plan is replaced by a tile-aware one and
  installed with diffusers' ``apply_context_parallel`` (``enable_parallelism`` on GPU machines): the
  tile-order hidden states and rotary tables are split in equal contiguous chunks before the first block,
  which are whole tiles (``TileSharding``), and gathered after ``proj_out``. The text stream is not split.

Without ``config`` (one GPU) the same processors and tile-order hooks run without exchanges: the
single-GPU baseline of the same code.

``windows``: one window per head used by every layer, or a sequence/dict giving per-head windows per
layer index (HunyuanVideo: 0-19 the dual-stream blocks, 20-59 the single-stream ones; Wan: the blocks).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..plan import Plan
from .sharding import TileSharding
from .timing import StepTimer
from .ulysses import UlyssesAttention

__all__ = ["enable_sta_parallelism", "STAContextParallelState", "HunyuanVideoSTAProcessor", "WanSTAProcessor",
           "SUPPORTED_MODELS"]

SUPPORTED_MODELS = ("HunyuanVideoTransformer3DModel", "WanTransformer3DModel")


class STAContextParallelState:
    """What the processors and hooks of one model share: the windows per layer, the process group, the
    canvas of the current call (set by a hook from the input shape), the timer."""

    def __init__(self, windows, layers: int, heads: int, tile: Sequence[int], group, kernel: str,
                 timer: StepTimer | None):
        self.layers, self.heads = layers, heads
        self.tile = tuple(int(t) for t in tile)
        self.group = group
        self.kernel = kernel
        self.timer = timer
        self.windows = _windows_per_layer(windows, layers, heads)
        import torch.distributed as dist

        initialised = dist.is_available() and dist.is_initialized() and group is not None
        self.world_size = dist.get_world_size(group) if initialised else 1
        self.rank = dist.get_rank(group) if initialised else 0
        self.canvas: tuple | None = None
        self.sharding: TileSharding | None = None
        self._video_plans: dict[tuple, Plan] = {}
        self._attention: dict[tuple, UlyssesAttention] = {}

    def begin(self, canvas: Sequence[int]) -> None:
        """Called before each forward with the patchified latent grid; checks the sharding."""
        canvas = tuple(int(c) for c in canvas)
        if len(canvas) != len(self.tile):
            raise ValueError(f"the latent grid {canvas} and the tile {self.tile} differ in rank")
        self.canvas = canvas
        self.sharding = TileSharding(canvas, self.tile, self.world_size)

    def video_plan(self) -> Plan:
        """A text-free plan of the canvas, for the raster <-> tile permutation of the video tokens."""
        self._require_canvas()
        plan = self._video_plans.get(self.canvas)
        if plan is None:
            plan = Plan(self.canvas, self.tile, text=0, windows=[(1,) * len(self.tile)])
            self._video_plans[self.canvas] = plan
        return plan

    def attention(self, layer: int) -> UlyssesAttention:
        self._require_canvas()
        windows = self.windows[layer]
        key = (self.canvas, windows)
        attend = self._attention.get(key)
        if attend is None:
            attend = UlyssesAttention(self.canvas, self.tile, windows, group=self.group, kernel=self.kernel,
                                      single_process=self.world_size == 1)
            self._attention[key] = attend
        return attend

    def _require_canvas(self) -> None:
        if self.canvas is None:
            raise RuntimeError("the canvas is not known yet: the model's forward sets it (call the model, "
                               "not a block, after enable_sta_parallelism)")

    # Raster <-> tile order of [B, S, ...] video tensors along dim.
    def to_tile_order(self, x, dim: int):
        return self.video_plan().tile(x, dim=dim)

    def to_raster_order(self, x, dim: int):
        return self.video_plan().untile(x, dim=dim)


def _windows_per_layer(windows, layers: int, heads: int) -> list[tuple]:
    """-> one tuple of per-head windows per layer, checked against the model's heads."""

    def per_head(value, where: str) -> tuple:
        value = list(value)
        if not value:
            raise ValueError(f"{where}: no windows given")
        if all(isinstance(s, int) for s in value):  # one window for every head
            return (tuple(value),) * heads
        result = tuple(tuple(int(s) for s in w) for w in value)
        if len(result) != heads:
            raise ValueError(
                f"{where}: {len(result)} per-head windows were given but the model has {heads} heads per layer "
                f"(a strategy must have one window per head of this model)")
        return result

    if isinstance(windows, Mapping):
        missing = [layer for layer in range(layers) if layer not in windows]
        if missing:
            raise ValueError(f"windows gives no entry for layer(s) {missing[:8]} of the model's {layers} STA layers")
        extra = sorted(set(windows) - set(range(layers)))
        if extra:
            raise ValueError(f"windows names layer(s) {extra[:8]}; the model has layers 0..{layers - 1}")
        return [per_head(windows[layer], f"layer {layer}") for layer in range(layers)]
    windows = list(windows)
    if not windows:
        raise ValueError("windows is empty: give one window, one per head, or per-head windows per layer")
    first = windows[0]
    if isinstance(first, int) or isinstance(list(first)[0], int):  # one window, or one per head
        return [per_head(windows, "windows")] * layers
    if len(windows) != layers:
        raise ValueError(f"windows gives {len(windows)} layers; the model has {layers} STA layers")
    return [per_head(w, f"layer {layer}") for layer, w in enumerate(windows)]


# MARK: processors


def _text_valid_from_mask(attention_mask, text: int):
    """HunyuanVideo's [B, 1, 1, N] boolean key mask -> [B] int32 valid text lengths (None when no mask).
    The model builds it as a valid prefix (right padding), which is what STA's text_valid means."""
    if attention_mask is None or text == 0:
        return None
    import torch

    mask = attention_mask.reshape(attention_mask.shape[0], -1)[:, -text:]
    return mask.sum(dim=1, dtype=torch.int32)


class HunyuanVideoSTAProcessor:
    """Joint video + text attention of a HunyuanVideo block through (context-parallel) STA.

    Equals diffusers' ``HunyuanVideoAttnProcessor2_0`` on the video rows and the valid text rows, with
    hidden_states in tile order (the hooks of ``enable_sta_parallelism`` arrange it); padding text rows
    get a zero attention output instead of an attention over the valid keys (they never reach a valid
    token: no row attends them).
    """

    _parallel_config = None  # set by enable_parallelism; the state carries the group

    def __init__(self, state: STAContextParallelState, layer: int):
        self.state, self.layer = state, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None):
        from diffusers.models.embeddings import apply_rotary_emb

        if encoder_hidden_states is None:
            raise ValueError("HunyuanVideoSTAProcessor needs the text stream (encoder_hidden_states)")
        heads = attn.heads

        def project(x, to_q, to_k, to_v, norm_q, norm_k):
            q, k, v = (f(x).unflatten(2, (heads, -1)) for f in (to_q, to_k, to_v))
            if norm_q is not None:
                q = norm_q(q)
            if norm_k is not None:
                k = norm_k(k)
            return q, k, v

        query, key, value = project(hidden_states, attn.to_q, attn.to_k, attn.to_v, attn.norm_q, attn.norm_k)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        if attn.add_q_proj is not None:  # dual-stream block: the text has its own projections
            text = project(encoder_hidden_states, attn.add_q_proj, attn.add_k_proj, attn.add_v_proj,
                           attn.norm_added_q, attn.norm_added_k)
        else:  # single-stream block: the same projections as the video
            text = project(encoder_hidden_states, attn.to_q, attn.to_k, attn.to_v, attn.norm_q, attn.norm_k)

        text_valid = _text_valid_from_mask(attention_mask, encoder_hidden_states.shape[1])
        attend = self.state.attention(self.layer)
        video_out, text_out = attend(query, key, value, text=text, text_valid=text_valid, timer=self.state.timer)
        hidden_states = video_out.flatten(2, 3).to(query.dtype)
        encoder_hidden_states = text_out.flatten(2, 3).to(query.dtype)

        if getattr(attn, "to_out", None) is not None:
            hidden_states = attn.to_out[0](hidden_states)
            hidden_states = attn.to_out[1](hidden_states)
        if getattr(attn, "to_add_out", None) is not None:
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        return hidden_states, encoder_hidden_states


def _wan_rotary(x, freqs_cos, freqs_sin):
    """Wan's interleaved rotary embedding (as in diffusers' WanAttnProcessor)."""
    import torch

    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class WanSTAProcessor:
    """Wan 2.1 self-attention through (context-parallel) STA; cross-attention (text keys, replicated)
    runs diffusers' own processor locally."""

    _parallel_config = None

    def __init__(self, state: STAContextParallelState, layer: int):
        from diffusers.models.transformers.transformer_wan import WanAttnProcessor

        self.state, self.layer = state, layer
        self._dense = WanAttnProcessor()  # for cross-attention; never given a parallel config

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if encoder_hidden_states is not None:
            return self._dense(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        if attention_mask is not None:
            raise ValueError("WanSTAProcessor: self-attention with an attention mask is not supported")
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query)
        key = attn.norm_k(key)
        query, key, value = (t.unflatten(2, (attn.heads, -1)) for t in (query, key, value))
        if rotary_emb is not None:
            query = _wan_rotary(query, *rotary_emb)
            key = _wan_rotary(key, *rotary_emb)
        out = self.state.attention(self.layer)(query, key, value, timer=self.state.timer)
        hidden_states = out.flatten(2, 3).type_as(query)
        hidden_states = attn.to_out[0](hidden_states)
        return attn.to_out[1](hidden_states)


# MARK: hooks


def _hook_classes():
    from diffusers.hooks import HookRegistry, ModelHook

    class CanvasHook(ModelHook):
        """Top level, before everything: the patchified latent grid of this call."""

        def __init__(self, state, patch):
            super().__init__()
            self.state, self.patch = state, patch

        def pre_forward(self, module, *args, **kwargs):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            frames, height, width = hidden.shape[2:]
            pt, ph, pw = self.patch
            self.state.begin((frames // pt, height // ph, width // pw))
            return args, kwargs

    class RotaryToTileHook(ModelHook):
        """The rotary tables (cos, sin) to tile order; registered before the split, so it runs first."""

        def __init__(self, state, dim):
            super().__init__()
            self.state, self.dim = state, dim

        def post_forward(self, module, output):
            return tuple(self.state.to_tile_order(t, self.dim) for t in output)

    class HiddenToTileHook(ModelHook):
        """The first block's hidden_states to tile order; registered after the split, so it runs first."""

        def __init__(self, state):
            super().__init__()
            self.state = state

        def pre_forward(self, module, *args, **kwargs):
            if "hidden_states" in kwargs:
                kwargs["hidden_states"] = self.state.to_tile_order(kwargs["hidden_states"], 1)
            else:
                args = (self.state.to_tile_order(args[0], 1),) + tuple(args[1:])
            return args, kwargs

    class OutputToRasterHook(ModelHook):
        """proj_out's (gathered) output back to raster order; registered after the gather, so it runs last."""

        def __init__(self, state):
            super().__init__()
            self.state = state

        def post_forward(self, module, output):
            return self.state.to_raster_order(output, 1)

    return HookRegistry, CanvasHook, RotaryToTileHook, HiddenToTileHook, OutputToRasterHook


def _register(registry_class, module, hook, name):
    registry_class.check_if_exists_or_initialize(module).register_hook(hook, name)


# MARK: enabling


def enable_sta_parallelism(model, windows, *, tile: Sequence[int] = (6, 8, 8), config=None, kernel: str = "auto",
                           timer: StepTimer | None = None) -> STAContextParallelState:
    """Installs STA processors and tile-order hooks on a diffusers HunyuanVideo or Wan transformer and, with
    ``config`` (a ``diffusers.ContextParallelConfig`` with ``ulysses_degree`` = the world size, ring degree 1),
    shards it over torch.distributed's default group with a tile-aware context-parallel plan.

    Returns the shared state (its ``timer`` collects all-to-all and attention times when one is given).
    Raises ValueError for an unsupported model, windows that do not give one window per head, a ring
    degree above 1, or (at the first forward) a world size that does not split the latent grid's tiles
    evenly (the message lists the sizes that would).
    """
    name = type(model).__name__
    if name not in SUPPORTED_MODELS:
        raise ValueError(f"enable_sta_parallelism supports {', '.join(SUPPORTED_MODELS)}, not {name}")
    hunyuan = name == "HunyuanVideoTransformer3DModel"
    heads = model.config.num_attention_heads
    if hunyuan:
        attentions = [block.attn for block in model.transformer_blocks] + [
            block.attn for block in model.single_transformer_blocks]
        patch = (model.config.patch_size_t, model.config.patch_size, model.config.patch_size)
    else:
        attentions = [block.attn1 for block in model.blocks]
        patch = tuple(model.config.patch_size)

    group = None
    if config is not None:
        cp = getattr(config, "context_parallel_config", config)
        if (cp.ring_degree or 1) != 1:
            raise ValueError(f"STA context parallelism uses Ulysses only; ring_degree is {cp.ring_degree}, must be 1")
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("initialise torch.distributed (torchrun + init_process_group) before enabling "
                               "context parallelism")
        if cp.ulysses_degree != dist.get_world_size():
            raise ValueError(f"ulysses_degree is {cp.ulysses_degree}; it must equal the world size "
                             f"{dist.get_world_size()} (STA shards over the default group)")
        group = dist.group.WORLD
    state = STAContextParallelState(windows, len(attentions), heads, tile, group, kernel, timer)
    processor_class = HunyuanVideoSTAProcessor if hunyuan else WanSTAProcessor
    for layer, attention in enumerate(attentions):
        attention.set_processor(processor_class(state, layer))

    registry, CanvasHook, RotaryToTileHook, HiddenToTileHook, OutputToRasterHook = _hook_classes()
    first_block = "transformer_blocks.0" if hunyuan else "blocks.0"
    rotary_dim = 0 if hunyuan else 1  # HunyuanVideo: ([S, D], [S, D]); Wan: ([1, S, 1, D], [1, S, 1, D])
    _register(registry, model, CanvasHook(state, patch), "sta_canvas")
    _register(registry, model.rope, RotaryToTileHook(state, rotary_dim), "sta_rope_tile")
    if config is not None:
        _apply_context_parallel(model, config, _tile_aware_plan(hunyuan))
    _register(registry, model.get_submodule(first_block), HiddenToTileHook(state), "sta_hidden_tile")
    _register(registry, model.proj_out, OutputToRasterHook(state), "sta_output_raster")
    return state


def _tile_aware_plan(hunyuan: bool) -> dict[str, Any]:
    """diffusers' context-parallel plan over tile-order tensors: split the rotary tables and the first
    block's hidden states in equal chunks (whole tiles), gather proj_out's output. Text is not split."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    if hunyuan:
        rope = ContextParallelInput(split_dim=0, expected_dims=2, split_output=True)
        first = "transformer_blocks.0"
    else:
        rope = ContextParallelInput(split_dim=1, expected_dims=4, split_output=True)
        first = "blocks.0"
    return {
        "rope": {0: rope, 1: rope},
        first: {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def _apply_context_parallel(model, config, plan) -> None:
    """``model.enable_parallelism(config=..., cp_plan=plan)``. On a machine without an accelerator (the
    CPU tests, gloo) diffusers cannot pick a device for the mesh, so the same steps are taken here: the
    mesh on the CPU, the config recorded on the model and its processors, ``apply_context_parallel``."""
    import torch

    if torch.accelerator.device_count() > 0:
        model.enable_parallelism(config=config, cp_plan=plan)
        return
    import torch.distributed as dist
    from diffusers.hooks.context_parallel import apply_context_parallel
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig

    if isinstance(config, ContextParallelConfig):
        config = ParallelConfig(context_parallel_config=config)
    cp = config.context_parallel_config
    mesh = cp.mesh or torch.distributed.device_mesh.init_device_mesh(
        "cpu", mesh_shape=cp.mesh_shape, mesh_dim_names=cp.mesh_dim_names)
    config.setup(dist.get_rank(), dist.get_world_size(), torch.device("cpu"), mesh=mesh)
    model._parallel_config = config
    for module in model.modules():
        processor = getattr(module, "processor", None)
        if processor is not None and hasattr(processor, "_parallel_config"):
            processor._parallel_config = config
    apply_context_parallel(model, cp, plan)
