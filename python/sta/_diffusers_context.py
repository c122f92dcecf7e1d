"""The state STA keeps on a transformer between its forward calls: the canvas and step of the current
call, the strategy, the plans, and the permutation indices.

A forward pre-hook on the transformer (``begin_call``) reads the latent shape (and, for FLUX, the image
position ids) and the denoising step before any block runs; the processors read them from here. Nothing
in a processor call reads device memory on the host: the per-row text lengths are computed on the device
from the attention mask, once per mask tensor.
"""

from __future__ import annotations

import inspect
import weakref

from .strategy import MaskStrategy, WindowStrategy, _ranges
from ._diffusers_layout import JointLayout
from ._diffusers_plans import PlanCache, attend

__all__ = ["STAContext"]

PREPARE_MODES = ("all", "lazy")


class STAContext:
    """STA's state on one transformer (``sta.diffusers.context(model)`` returns it).

    Attributes read by the processors: ``canvas`` (T, H, W) or (H, W) in tokens, ``text`` (text tokens of
    the call), ``step`` (denoising step index), ``tile``, ``kernel``. Counters for diagnostics: ``calls``
    (transformer calls seen), ``plans`` (the plan cache), ``prepared_window_sets``.
    """

    def __init__(self, model, spec, strategy: WindowStrategy, *, tile=None, kernel="auto", scheduler=None,
                 prepare="all", validate=True, calls_per_step=1, capture=None):
        if prepare not in PREPARE_MODES:
            raise ValueError(f"prepare is {prepare!r}; allowed: {', '.join(map(repr, PREPARE_MODES))}")
        if int(calls_per_step) < 1:
            raise ValueError(f"calls_per_step is {calls_per_step}; it must be at least 1")
        self.spec = spec
        self._model = weakref.ref(model)
        self.strategy = strategy
        self.kernel = kernel
        self.scheduler = scheduler
        self.prepare_mode = prepare
        self.validate = bool(validate)
        self.calls_per_step = int(calls_per_step)
        self.capture = capture
        self.layers = spec.layers(model)
        self.heads = int(model.config.num_attention_heads)
        self.head_dim = int(model.config.attention_head_dim)
        tile = tuple(int(t) for t in tile) if tile is not None else None
        if tile is not None and strategy.tile is not None and tuple(strategy.tile) != tile:
            raise ValueError(f"tile {tile} was given but the strategy's windows are written for tile {strategy.tile}")
        self.tile = tile or (tuple(strategy.tile) if strategy.tile is not None else spec.default_tile)
        self.canvas = None
        self.text = None
        self.step = None
        self.calls = 0
        self.pinned_step = None
        self.description = None
        self.plans = PlanCache()
        self.prepared_window_sets = 0
        self._signature = inspect.signature(model.forward)
        self._layouts = {}
        self._resolved = {}
        self._prepared = set()
        self._mask = None
        self._image_ids = None
        self._check_structure()

    # MARK: the pre-hook

    def pre_hook(self, module, args, kwargs):
        arguments = self._signature.bind_partial(*args, **kwargs).arguments
        self.begin_call(arguments)
        return None

    def begin_call(self, arguments) -> None:
        """Reads the canvas, text count and step of one transformer call; prepares the plans the first
        time a canvas is seen."""
        model = self._model()
        canvas, text, description = self.spec.canvas(model, arguments, self)
        if len(canvas) != len(self.tile):
            raise ValueError(f"{self.spec.name}: the canvas {canvas} has {len(canvas)} axes but the tile {self.tile} "
                             f"has {len(self.tile)}")
        if any(c < 1 for c in canvas):
            raise ValueError(f"{self.spec.name}: {description} gives the empty canvas {canvas}")
        expected = self.strategy.canvas
        if expected is not None and tuple(expected) != tuple(canvas):
            raise ValueError(
                f"{self.spec.name}: {description} gives a canvas of {_shape(canvas)} tokens, but the strategy was "
                f"made for {_shape(expected)}; use a latent of that size or a strategy for this canvas")
        self.canvas = tuple(canvas)
        self.text = text
        self.description = description
        self.step = self._step_index(arguments.get("timestep"))
        self.calls += 1
        hidden = arguments.get("hidden_states")
        key = (self.canvas, self.text, str(hidden.device), self._dtype(model))
        if key not in self._prepared:
            self._prepare(hidden.device, self._dtype(model))
            self._prepared.add(key)

    @staticmethod
    def _dtype(model):
        for parameter in model.parameters():
            return parameter.dtype
        return None

    # MARK: steps

    def _step_index(self, timestep) -> int:
        if self.pinned_step is not None:
            return self.pinned_step
        scheduler = self.scheduler
        if scheduler is None:
            return self.calls // self.calls_per_step
        index = getattr(scheduler, "step_index", None)
        if index is None:
            index = getattr(scheduler, "begin_index", None)
        if index is not None:
            return int(index)
        return self._lookup_timestep(scheduler, timestep)

    @staticmethod
    def _lookup_timestep(scheduler, timestep) -> int:
        """Position of ``timestep`` in ``scheduler.timesteps`` (nearest, also against timesteps / 1000 as
        FLUX passes them); one device read. 0 when the scheduler has no timesteps."""
        timesteps = getattr(scheduler, "timesteps", None)
        if timesteps is None or timestep is None or len(timesteps) == 0:
            return 0
        import torch

        value = float(torch.as_tensor(timestep).flatten()[0])
        table = [float(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
        best = min(range(len(table)), key=lambda i: min(abs(table[i] - value), abs(table[i] / 1000 - value) * 1000))
        return best

    # MARK: windows and plans

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-c // t) for c, t in zip(self.canvas, self.tile))

    def _check_structure(self) -> None:
        """Entries every run needs (layers × heads of each step the strategy lists), checked before any
        canvas is known."""
        layers = [layer for layer, _ in self.layers]
        steps = self.strategy.steps() or [0]
        for step in steps:
            for layer in layers:
                self.strategy.windows(step, layer, self.heads)

    def windows(self, layer: int, heads: int):
        """The resolved window set of ``layer`` at the current step (cached)."""
        key = (self.canvas, self.tile, self.step, layer, heads)
        windows = self._resolved.get(key)
        if windows is None:
            windows = self.strategy.resolved(self.step, layer, heads, self.grid)
            self._resolved[key] = windows
        return windows

    def plan(self, layer: int, heads: int, text: int):
        return self.plans.get(self.canvas, self.tile, text, self.windows(layer, heads))

    def _steps_to_prepare(self):
        steps = self.strategy.steps()
        timesteps = getattr(self.scheduler, "timesteps", None) if self.scheduler is not None else None
        if steps is not None and timesteps is not None and len(timesteps) > 0:
            missing = [s for s in range(len(timesteps)) if s not in set(steps)] if isinstance(
                self.strategy, MaskStrategy) else []
            if missing:
                raise ValueError(
                    f"{self.strategy.source}: the scheduler runs {len(timesteps)} steps but the strategy has no "
                    f"entries for steps {_ranges(missing)} (steps present: {_ranges(steps)})")
        return steps if steps is not None else [self.step]

    def _prepare(self, device, dtype) -> None:
        """Builds the plan of every window set the strategy uses (all its steps × the model's layers) and, on
        a CUDA device with ``prepare="all"``, runs each once on zeros so that its kernel is compiled and its
        tables uploaded now rather than inside the denoising loop. Cost: one batch-1 attention call per
        distinct window set, once per canvas."""
        layers = [layer for layer, _ in self.layers]
        steps = self._steps_to_prepare()
        sets = self.strategy.window_sets(layers, self.heads, self.grid, steps=steps)
        self.prepared_window_sets = len(sets)
        if self.prepare_mode != "all":
            return
        plans = [self.plans.get(self.canvas, self.tile, self.text, windows) for windows in sorted(sets)]
        if getattr(device, "type", "cpu") != "cuda" or dtype not in _cuda_dtypes():
            return
        import torch

        sequence = plans[0].sequence_length
        with torch.no_grad():
            zeros = torch.zeros((1, self.heads, sequence, self.head_dim), device=device, dtype=dtype)
            for plan in plans:
                attend(zeros, zeros, zeros, plan, kernel=self.kernel)
            del zeros

    # MARK: layouts and masks

    def layout(self, text: int, device) -> JointLayout:
        key = (self.canvas, self.tile, int(text), self.spec.text_first, str(device))
        layout = self._layouts.get(key)
        if layout is None:
            layout = JointLayout(self.canvas, self.tile, text, self.spec.text_first, device)
            self._layouts[key] = layout
        return layout

    def require_call(self) -> None:
        if self.canvas is None:
            raise RuntimeError(
                f"{self.spec.name}: an STA processor ran before the transformer's forward: sta.diffusers reads the "
                "canvas from the latent in a pre-hook on the transformer, so call the transformer itself")

    def text_valid(self, mask, video: int, text: int):
        """Per-row valid text lengths (int32 [B] on the mask's device) from HunyuanVideo's [B, 1, 1, N]
        boolean mask (video tokens, then the text with its padding at the end); None without a mask.
        Computed once per mask tensor; with ``validate`` the mask's shape of "all video, then a prefix of
        the text" is checked once per mask tensor (one device read)."""
        if mask is None or text == 0:
            return None
        cached = self._mask
        if cached is not None and cached[0] is mask and cached[1] == mask._version and cached[2] == (video, text):
            return cached[3]
        import torch

        if mask.dtype != torch.bool:
            raise TypeError(f"{self.spec.name}: the attention mask is {mask.dtype}; STA reads a boolean key-padding "
                            "mask [B, 1, 1, N] (True = attend)")
        batch = mask.shape[0]
        if mask.numel() != batch * (video + text):
            raise ValueError(
                f"{self.spec.name}: the attention mask has shape {list(mask.shape)}; expected a key-padding mask "
                f"[B, 1, 1, {video + text}] over {video} video tokens then {text} text tokens")
        flat = mask.reshape(batch, video + text)
        valid = flat[:, video:].sum(-1, dtype=torch.int32)
        if self.validate:
            positions = torch.arange(text, device=mask.device)
            video_ok = flat[:, :video].all()
            prefix_ok = (flat[:, video:] == (positions.unsqueeze(0) < valid.unsqueeze(1))).all()
            video_ok, prefix_ok = (bool(x) for x in torch.stack([video_ok, prefix_ok]).tolist())
            if not video_ok:
                raise ValueError(
                    f"{self.spec.name}: the attention mask marks some of the first {video} tokens as padding; "
                    f"this model puts the {video} video tokens first and the {text} text tokens after them "
                    "(padding at the end of the text). Text before the video, or masked video tokens, are not "
                    "supported by STA")
            if not prefix_ok:
                raise ValueError(
                    f"{self.spec.name}: the text part of the attention mask is not 'valid tokens, then padding' in "
                    "every row; STA needs right-padded text")
        self._mask = (mask, mask._version, (video, text), valid)
        return valid

    def image_canvas(self, ids, image_tokens: int):
        """FLUX: the (H, W) grid of the packed latent from ``img_ids`` [S, 3] = (0, row, col) in raster order.
        Read once per ids tensor (one or two device reads)."""
        cached = self._image_ids
        if cached is not None and cached[0] is ids and cached[1] == ids._version and cached[2] == image_tokens:
            return cached[3]
        import torch

        table = ids[0] if ids.ndim == 3 else ids
        if table.ndim != 2 or table.shape[-1] != 3 or table.shape[0] != image_tokens:
            raise ValueError(f"FluxTransformer2DModel: img_ids has shape {list(ids.shape)}; expected [{image_tokens}, 3] "
                             "(one (0, row, column) per image token)")
        last = [int(round(x)) for x in table[-1].tolist()]
        height, width = last[1] + 1, last[2] + 1
        if height * width != image_tokens:
            raise ValueError(
                f"FluxTransformer2DModel: the last img_ids entry {tuple(last)} gives a {height}×{width} grid, which "
                f"is not the {image_tokens} image tokens; STA needs one image in raster order (no extra reference "
                "images)")
        if self.validate:
            # Compared as integers: the ids may be bf16, which holds the row and column indices exactly but
            # not the token positions.
            ints = table.round().long()
            positions = torch.arange(image_tokens, device=table.device)
            ok = ((ints[:, 1] == torch.div(positions, width, rounding_mode="floor")).all()
                  & (ints[:, 2] == torch.remainder(positions, width)).all()
                  & (ints[:, 0] == ints[0, 0]).all())
            if not bool(ok):
                raise ValueError("FluxTransformer2DModel: img_ids are not one image in raster order (row-major, one "
                                 "frame index); STA supports that layout only")
        self._image_ids = (ids, ids._version, image_tokens, (height, width))
        return (height, width)

    # MARK: attention

    def attend(self, query, key, value, *, layer: int, text: int, text_valid=None):
        """STA on [B, S, H, D] tensors in the model's token order; returns [B, S, H, D] in that order."""
        self.require_call()
        layout = self.layout(text, query.device)
        if query.shape[1] != layout.model_length:
            raise ValueError(
                f"{self.spec.name} layer {layer}: the attention got {query.shape[1]} tokens, but the {self.description} "
                f"gives {layout.video} video tokens ({_shape(self.canvas)}) + {text} text = {layout.model_length}")
        heads = query.shape[2]
        plan = self.plan(layer, heads, text)
        tiled = [layout.to_tiles(x) for x in (query, key, value)]
        if self.capture is not None and self.capture.wants(self.step, layer):
            self.capture.save(self, layer, *tiled, layout=layout, text_valid=text_valid)
        out = attend(*tiled, plan, text_valid=text_valid, kernel=self.kernel)
        return layout.from_tiles(out)


def _cuda_dtypes():
    import torch

    return (torch.bfloat16, torch.float16)


def _shape(canvas) -> str:
    return "×".join(str(c) for c in canvas)

