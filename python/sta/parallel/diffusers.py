"""Context-parallel STA inside diffusers (0.42): HunyuanVideo and Wan 2.1 transformers over
torch.distributed, built on ``sta.diffusers`` (its processors, strategies and step tracking).

    import torch.distributed as dist
    from diffusers import ContextParallelConfig
    from sta.parallel.diffusers import enable_sta_parallelism

    dist.init_process_group("nccl")                       # under torchrun; one GPU per rank
    context = enable_sta_parallelism(pipe.transformer, strategy=(3, 3, 3),
                                     config=ContextParallelConfig(ulysses_degree=dist.get_world_size()))
    output = pipe.transformer(**inputs)                   # every rank gets the whole output

What it does to the transformer:

* **Processors**: ``sta.diffusers``' own (HunyuanVideo: the joint attention of the 20 dual- and 40
  single-stream blocks; Wan: each block's self-attention; Wan's cross-attention keeps diffusers'
  processor and runs locally, its keys being the replicated text). They hand q, k, v to the context,
  which here is a ``ContextParallelSTAContext``: its ``attend`` runs ``UlyssesAttention`` on the rank's
  tokens instead of permuting a whole sequence.
* **Tile order**: hooks permute the patchified hidden states and the rotary tables from raster to tile
  order (zero holes) once before the first block, and the output back after ``proj_out``; the blocks work
  in tile order, so no attention call permutes.
* **Sharding** (with ``config``): a tile-aware context-parallel plan goes through diffusers' own machinery
  (``enable_parallelism(cp_plan=...)``; ``apply_context_parallel`` on machines without an accelerator):
  the tile-order hidden states and rotary tables are split into equal contiguous chunks before the first
  block (``TileSharding``: equal token ranges, whole tiles where the world size divides the tiles), and
  gathered after ``proj_out``. The text stream is not split: every rank holds all text tokens.

Without ``config`` (one GPU) the same processors and tile-order hooks run without exchanges: the
single-GPU baseline of the same code.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..diffusers import _ATTRIBUTE, _State, _transformer_and_scheduler
from .._diffusers_context import STAContext
from .._diffusers_models import spec_for
from ..plan import Plan
from ..strategy import as_strategy
from .sharding import TileSharding
from .timing import StepTimer
from .ulysses import UlyssesAttention, _attend

__all__ = ["enable_sta_parallelism", "ContextParallelSTAContext", "SUPPORTED"]

SUPPORTED = ("HunyuanVideoTransformer3DModel", "WanTransformer3DModel")


class ContextParallelSTAContext(STAContext):
    """``sta.diffusers.STAContext`` whose attention is Ulysses over a process group, on tile-order,
    sharded hidden states. Extra attributes: ``group``, ``world_size``, ``rank``, ``sharding`` (of the
    current canvas), ``timer`` (a ``StepTimer`` or None)."""

    def __init__(self, model, spec, strategy, *, group, world_size: int, rank: int, timer: StepTimer | None,
                 head_chunks: int = 2, **options):
        self.group, self.world_size, self.rank, self.timer = group, int(world_size), int(rank), timer
        self.head_chunks = int(head_chunks)
        self._shardings: dict[tuple, TileSharding] = {}
        self._ulysses: dict[tuple, UlyssesAttention] = {}
        self._video_plans: dict[tuple, Plan] = {}
        self._all_valid = None
        super().__init__(model, spec, strategy, **options)

    # MARK: canvas

    @property
    def sharding(self) -> TileSharding:
        """The current canvas' sharding; raises (naming the world sizes that would work) when the world
        size does not split its tile-order tokens evenly."""
        self.require_call()
        key = (self.canvas, self.tile)
        sharding = self._shardings.get(key)
        if sharding is None:
            sharding = TileSharding(self.canvas, self.tile, self.world_size)
            self._shardings[key] = sharding
        return sharding

    def begin_call(self, arguments) -> None:
        super().begin_call(arguments)
        self.sharding  # noqa: B018 - the check, at every call

    def video_plan(self) -> Plan:
        """A text-free plan of the canvas: the raster <-> tile permutation of the video tokens."""
        self.require_call()
        plan = self._video_plans.get((self.canvas, self.tile))
        if plan is None:
            plan = Plan(self.canvas, self.tile, text=0, windows=[(1,) * len(self.tile)])
            self._video_plans[(self.canvas, self.tile)] = plan
        return plan

    def to_tile_order(self, x, dim: int):
        return self.video_plan().tile(x, dim=dim)

    def to_raster_order(self, x, dim: int):
        return self.video_plan().untile(x, dim=dim)

    # MARK: attention

    def ulysses(self, windows) -> UlyssesAttention:
        """The Ulysses attention of one resolved window set (all heads) on the current canvas."""
        key = (self.canvas, self.tile, tuple(windows))
        attend = self._ulysses.get(key)
        if attend is None:
            attend = UlyssesAttention(self.canvas, self.tile, windows, group=self.group, kernel=self.kernel,
                                      single_process=self.world_size == 1, head_chunks=self.head_chunks)
            self._ulysses[key] = attend
        return attend

    def attend(self, query, key, value, *, layer: int, text: int, text_valid=None):
        """[B, S_local + text, H, D] (this rank's tile-order video tokens, then all text tokens) ->
        the same shape: Ulysses STA with the layer's windows at the current step."""
        self.require_call()
        if self.capture is not None:
            raise ValueError("capturing q, k, v is not supported under context parallelism; capture on one GPU")
        heads = query.shape[2]
        attend = self.ulysses(self.windows(layer, heads))
        video = query.shape[1] - text
        if video != self.sharding.tokens_per_rank:
            raise ValueError(
                f"{self.spec.name} layer {layer}: the attention got {video} video tokens; rank {self.rank} of "
                f"{self.world_size} holds {self.sharding.tokens_per_rank} tile-order tokens of the canvas "
                f"{self.canvas} (the hooks of enable_sta_parallelism shard the hidden states)")
        if not text:
            return attend(query, key, value, timer=self.timer)
        parts = [(x[:, :video], x[:, video:]) for x in (query, key, value)]
        return attend(*(p[0] for p in parts), text=tuple(p[1] for p in parts), text_valid=text_valid,
                      timer=self.timer, joint=True)

    def text_valid(self, mask, video: int, text: int):
        """Per-row valid text lengths from the model's [B, 1, 1, N] mask, which spans the whole video
        (N = all video tokens + text) while this rank's q holds only its shard."""
        if mask is None or text == 0:
            return None
        valid = super().text_valid(mask, mask.numel() // mask.shape[0] - text, text)
        # Every row fully valid (the usual prompt padding to a fixed length aside): pass no lengths at all.
        # One device read per mask tensor (the model makes one per call).
        cached = self._all_valid
        if cached is None or cached[0] is not mask or cached[1] != mask._version:
            self._all_valid = cached = (mask, mask._version, bool((valid == text).all()))
        return None if cached[2] else valid

    def _prepare(self, device, dtype) -> None:
        """Plans of this rank's heads for every window set the strategy uses; on CUDA each runs once on
        zeros (kernel compiled, tables uploaded) before the denoising loop."""
        layers = [layer for layer, _ in self.layers]
        sets = self.strategy.window_sets(layers, self.heads, self.grid, steps=self._steps_to_prepare())
        self.prepared_window_sets = len(sets)
        if self.prepare_mode != "all":
            return
        attends = [self.ulysses(windows) for windows in sorted(sets)]
        plans = [attend.plan(self.text or 0, chunk) for attend in attends for chunk in range(len(attend.chunks))]
        import torch

        if getattr(device, "type", "cpu") != "cuda" or dtype not in (torch.bfloat16, torch.float16):
            return
        with torch.no_grad():
            for plan in plans:
                zeros = torch.zeros((1, plan.heads, plan.sequence_length, self.head_dim), device=device, dtype=dtype)
                _attend(zeros, zeros, zeros, plan, scale=None, text_valid=None, kernel=self.kernel)
                del zeros


# MARK: hooks


def _hook_classes():
    from diffusers.hooks import ModelHook

    class RotaryToTileHook(ModelHook):
        """The rotary tables (cos, sin) to tile order; registered before the split, so it runs first."""

        def __init__(self, context, dim):
            super().__init__()
            self.context, self.dim = context, dim

        def post_forward(self, module, output):
            return tuple(self.context.to_tile_order(t, self.dim) for t in output)

    class HiddenToTileHook(ModelHook):
        """The first block's hidden_states to tile order; registered after the split, so it runs first."""

        def __init__(self, context):
            super().__init__()
            self.context = context

        def pre_forward(self, module, *args, **kwargs):
            if "hidden_states" in kwargs:
                kwargs["hidden_states"] = self.context.to_tile_order(kwargs["hidden_states"], 1)
            else:
                args = (self.context.to_tile_order(args[0], 1),) + tuple(args[1:])
            return args, kwargs

    class OutputToRasterHook(ModelHook):
        """proj_out's (gathered) output back to raster order; registered after the gather, so it runs last."""

        def __init__(self, context):
            super().__init__()
            self.context = context

        def post_forward(self, module, output):
            return self.context.to_raster_order(output, 1)

    return RotaryToTileHook, HiddenToTileHook, OutputToRasterHook


def _register(module, hook, name: str) -> None:
    from diffusers.hooks import HookRegistry

    HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, name)


# MARK: enabling


def enable_sta_parallelism(pipe_or_transformer, strategy=(3, 3, 3), *, tile: Sequence[int] | None = None,
                           config=None, kernel: str = "auto", scheduler=None, prepare: str = "all",
                           validate: bool = True, calls_per_step: int = 1, timer: StepTimer | None = None,
                           head_chunks: int = 2) -> ContextParallelSTAContext:
    """STA on a HunyuanVideo or Wan 2.1 transformer (or a pipeline holding one), sharded over
    torch.distributed's default group when ``config`` is a ``diffusers.ContextParallelConfig`` (or a
    ``ParallelConfig`` holding one) with ``ulysses_degree`` = the world size and ring degree 1.

    strategy, tile, kernel, scheduler, prepare, validate, calls_per_step: as for
    ``sta.diffusers.enable_sta`` (the windows of every head of every layer, per step when the strategy
    says so; each rank runs its heads' windows).
    timer: a ``StepTimer`` that collects the all-to-all and attention times of every call.
    head_chunks: the rank's heads are attended in this many chunks so that exchanges overlap attention
        (``UlyssesAttention``); 1 exchanges everything before attending.

    Returns the context. Raises for an unsupported model, a model with STA or parallelism already enabled,
    a ring degree above 1, a strategy whose heads do not match the model, and (at the first call) a world
    size that does not split the latent grid's tile-order tokens evenly (the message lists the sizes that
    would).
    The change cannot be undone (``enable_parallelism`` cannot either); build a fresh model instead.
    """
    transformer, scheduler = _transformer_and_scheduler(pipe_or_transformer, scheduler)
    spec = spec_for(transformer)
    if spec.name not in SUPPORTED:
        raise ValueError(f"context-parallel STA supports {', '.join(SUPPORTED)}, not {spec.name}")
    if getattr(transformer, _ATTRIBUTE, None) is not None:
        raise ValueError(f"STA is already enabled on this {spec.name}; enable context-parallel STA on a model "
                         "without it (sta.diffusers.disable_sta first)")
    if getattr(transformer, "_parallel_config", None) is not None:
        raise ValueError(f"parallelism is already enabled on this {spec.name}; start from a fresh model")
    group, world_size, rank = None, 1, 0
    if config is not None:
        group, world_size, rank = _check_config(config)

    context = ContextParallelSTAContext(
        transformer, spec, as_strategy(strategy), group=group, world_size=world_size, rank=rank, timer=timer,
        head_chunks=head_chunks, tile=tile, kernel=kernel, scheduler=scheduler, prepare=prepare, validate=validate,
        calls_per_step=calls_per_step)
    originals = []
    for layer, module in context.layers:
        original = module.processor
        if type(original).__name__ not in spec.processor_classes:
            raise TypeError(
                f"{spec.name} layer {layer}: its attention processor is {type(original).__name__}; context-parallel "
                f"STA replaces only diffusers' default ({', '.join(spec.processor_classes)})")
        originals.append((module, original))
    for (layer, module), (_, original) in zip(context.layers, originals):
        module.set_processor(spec.processor(context, layer, original))
    hook = transformer.register_forward_pre_hook(context.pre_hook, with_kwargs=True)
    setattr(transformer, _ATTRIBUTE, _State(context, originals, hook))

    hunyuan = spec.name == "HunyuanVideoTransformer3DModel"
    rotary_to_tile, hidden_to_tile, output_to_raster = _hook_classes()
    # HunyuanVideo's rotary tables are ([S, D], [S, D]); Wan's ([1, S, 1, D], [1, S, 1, D]).
    _register(transformer.rope, rotary_to_tile(context, 0 if hunyuan else 1), "sta_rope_tile")
    if config is not None:
        _apply_context_parallel(transformer, config, _tile_aware_plan(hunyuan))
        # Exchange over the group whose rank order diffusers' split and gather use (the flattened mesh).
        import torch.distributed as dist

        mesh = transformer._parallel_config.context_parallel_config._flattened_mesh
        context.group = mesh.get_group()
        context.world_size, context.rank = dist.get_world_size(context.group), dist.get_rank(context.group)
    first_block = "transformer_blocks.0" if hunyuan else "blocks.0"
    _register(transformer.get_submodule(first_block), hidden_to_tile(context), "sta_hidden_tile")
    _register(transformer.proj_out, output_to_raster(context), "sta_output_raster")
    return context


def _check_config(config):
    import torch.distributed as dist

    cp = getattr(config, "context_parallel_config", config)
    if cp is None or not hasattr(cp, "ulysses_degree"):
        raise TypeError("config must be a diffusers ContextParallelConfig (or a ParallelConfig holding one)")
    if (cp.ring_degree or 1) != 1:
        raise ValueError(f"context-parallel STA uses Ulysses only: ring_degree is {cp.ring_degree}; it must be 1")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("initialise torch.distributed (torchrun, then init_process_group) before enabling "
                           "context parallelism")
    if cp.ulysses_degree != dist.get_world_size():
        raise ValueError(f"ulysses_degree is {cp.ulysses_degree}; it must equal the world size "
                         f"{dist.get_world_size()} (STA shards over the default group)")
    return dist.group.WORLD, dist.get_world_size(), dist.get_rank()


def _tile_aware_plan(hunyuan: bool) -> dict[str, Any]:
    """diffusers' context-parallel plan over tile-order tensors: split the rotary tables and the first
    block's hidden states in equal chunks (``TileSharding``'s ranges), gather proj_out's output. Text is not
    split."""
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
    CPU tests, gloo) diffusers cannot pick a device for its mesh, so the same steps are taken here: the
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
