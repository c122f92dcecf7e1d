"""Window strategies: which window (in tiles) each head of each layer uses at each denoising step.

A strategy maps (step, layer, head) to a window in **tiles**, one size per canvas axis, or to ``FULL``
(every tile of every axis). The processors of ``sta.diffusers`` ask it once per (step, layer) for the
windows of all heads, resolve them against the tile grid of the current canvas, and build (or reuse) one
``sta.Plan`` per distinct window set, so steps and layers that share windows share a plan and its
compiled kernel.

    from sta.strategy import Uniform, PerLayer, MaskStrategy, FullFirst, load_strategy

    Uniform((3, 3, 3))                              # every step, layer and head
    Uniform([(5, 3, 3)] * 10 + [(1, 6, 10)] * 14)   # one window per head, every step and layer
    PerLayer({0: (5, 5, 5), 1: (3, 3, 3)}, default=(3, 3, 3))
    FullFirst(15, Uniform((3, 3, 3)))               # full attention for steps 0..14
    load_strategy("mask_strategy.json")             # FastVideo's {"step_layer_head": [kt, kh, kw]}

Window rules (the library's): a size at least the axis' tile count means the whole axis; a smaller size
must be odd. ``resolve_window`` applies them and raises a clear error otherwise.

The JSON format is the one ``sta search`` writes and FastVideo reads: one flat object, keys
``"<step>_<layer>_<head>"`` (non-negative integers), values arrays of 1 to 3 positive integers, one entry
per line sorted by step, layer, head.
"""

from __future__ import annotations

import json
import os
import re
from typing import Iterable, Mapping, Sequence

__all__ = [
    "FULL",
    "WindowStrategy",
    "Uniform",
    "PerLayer",
    "MaskStrategy",
    "FullFirst",
    "load_strategy",
    "resolve_window",
    "as_strategy",
]


class _Full:
    """The full window: every tile of every axis (dense attention through the same kernel)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "FULL"

    def __reduce__(self):
        return (_Full, ())


FULL = _Full()


def _window_tuple(window, what: str):
    """A window as FULL or a tuple of positive ints; raises a clear error for anything else."""
    if window is FULL or (isinstance(window, str) and window.lower() == "full"):
        return FULL
    if isinstance(window, int):
        raise TypeError(f"{what} is the integer {window}; give one size per canvas axis, e.g. (3, 3, 3)")
    try:
        sizes = tuple(int(s) for s in window)
    except (TypeError, ValueError):
        raise TypeError(f"{what} is {window!r}; give a tuple of tile counts such as (3, 3, 3), or FULL") from None
    if not 1 <= len(sizes) <= 3:
        raise ValueError(f"{what} is {window!r}; give 1 to 3 sizes (one per canvas axis)")
    if any(s < 1 for s in sizes):
        raise ValueError(f"{what} is {window!r}; every size must be a positive number of tiles")
    return sizes


def _head_windows(windows, what: str):
    """A single window (FULL or a tuple) or a per-head list of windows, normalised."""
    if windows is FULL or isinstance(windows, (str, int)):
        return _window_tuple(windows, what)
    items = list(windows)
    if items and all(isinstance(s, int) for s in items):
        return _window_tuple(items, what)
    if not items:
        raise ValueError(f"{what} is empty; give a window or one window per head")
    return [_window_tuple(w, f"{what}[head {h}]") for h, w in enumerate(items)]


def resolve_window(window, grid: Sequence[int], *, where: str = "window") -> tuple[int, ...]:
    """The window clamped to the tile grid: FULL -> grid; a size >= the axis' tile count -> that count.

    Raises ValueError for a rank that differs from the grid's, and for an even size smaller than its axis
    (a window must be centred on its query tile). ``where`` names the entry in the message.
    """
    grid = tuple(int(n) for n in grid)
    if window is FULL:
        return grid
    if len(window) != len(grid):
        raise ValueError(f"{where} {tuple(window)} has {len(window)} sizes; the tile grid {grid} has {len(grid)} axes")
    resolved = []
    for axis, (size, count) in enumerate(zip(window, grid)):
        if size >= count:
            resolved.append(count)
        elif size % 2 == 0:
            raise ValueError(
                f"{where} {tuple(window)}: size {size} on axis {axis} is even and smaller than the axis' "
                f"{count} tiles; a window must be odd, or at least the axis (the whole axis)")
        else:
            resolved.append(size)
    return tuple(resolved)


class WindowStrategy:
    """What every strategy answers. Subclasses implement ``windows`` (and ``steps`` when they depend on
    the step).

    ``tile``: the tile in tokens the windows are written for (None: the model's default tile).
    ``canvas``: the canvas in tokens the strategy was made for (None: any canvas); a model run whose latent
    gives another canvas is rejected with an error naming both.
    """

    tile: tuple[int, ...] | None = None
    canvas: tuple[int, ...] | None = None

    def windows(self, step: int, layer: int, heads: int) -> list:
        """The window of every head 0..<heads of (step, layer): FULL or a tuple of tiles each."""
        raise NotImplementedError

    def steps(self) -> list[int] | None:
        """The steps the strategy distinguishes (sorted), or None when it is the same at every step."""
        return None

    def resolved(self, step: int, layer: int, heads: int, grid: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """``windows`` resolved against the tile grid: the window set a plan is built for."""
        return tuple(
            resolve_window(w, grid, where=f"the window of step {step}, layer {layer}, head {h}")
            for h, w in enumerate(self.windows(step, layer, heads)))

    def window_sets(self, layers: Iterable[int], heads: int, grid: Sequence[int],
                    steps: Iterable[int] | None = None) -> set[tuple[tuple[int, ...], ...]]:
        """Every distinct resolved window set over ``steps`` (default: ``self.steps()``, or step 0 when the
        strategy does not depend on the step) and ``layers``. Raises for any missing or bad entry."""
        if steps is None:
            steps = self.steps()
            if steps is None:
                steps = [0]
        layers = list(layers)
        return {self.resolved(step, layer, heads, grid) for step in steps for layer in layers}

    def _check_context(self, tile, canvas) -> None:
        if tile is not None:
            self.tile = tuple(int(t) for t in tile)
        if canvas is not None:
            self.canvas = tuple(int(c) for c in canvas)


def _per_head(window, heads: int, where: str) -> list:
    if isinstance(window, list):
        if len(window) != heads:
            raise ValueError(f"{where} lists {len(window)} per-head windows; the model has {heads} heads")
        return list(window)
    return [window] * heads


class Uniform(WindowStrategy):
    """The same windows at every step and layer: one window for every head, or one per head."""

    def __init__(self, window=(3, 3, 3), *, tile: Sequence[int] | None = None,
                 canvas: Sequence[int] | None = None):
        self.window = _head_windows(window, "window")
        self._check_context(tile, canvas)

    def windows(self, step, layer, heads):
        return _per_head(self.window, heads, "the uniform strategy")

    def __repr__(self) -> str:
        return f"Uniform({self.window!r}, tile={self.tile})"


class PerLayer(WindowStrategy):
    """Windows per layer (the same at every step): ``{layer: window or per-head list}`` or a list indexed
    by layer; layers not listed use ``default`` (None: a missing layer is an error)."""

    def __init__(self, layers: Mapping[int, object] | Sequence[object], *, default=None,
                 tile: Sequence[int] | None = None, canvas: Sequence[int] | None = None):
        items = layers.items() if isinstance(layers, Mapping) else enumerate(layers)
        self.layers = {int(layer): _head_windows(w, f"the window of layer {layer}") for layer, w in items}
        self.default = None if default is None else _head_windows(default, "default")
        self._check_context(tile, canvas)

    def windows(self, step, layer, heads):
        window = self.layers.get(layer, self.default)
        if window is None:
            raise ValueError(
                f"the per-layer strategy has no window for layer {layer} (layers listed: "
                f"{_ranges(sorted(self.layers))}) and no default")
        return _per_head(window, heads, f"layer {layer} of the per-layer strategy")

    def __repr__(self) -> str:
        return f"PerLayer({len(self.layers)} layers, default={self.default!r}, tile={self.tile})"


class FullFirst(WindowStrategy):
    """Full attention for steps 0..<``steps``, then ``then`` (any strategy; a window is read as Uniform)."""

    def __init__(self, steps: int, then=None, *, tile: Sequence[int] | None = None,
                 canvas: Sequence[int] | None = None):
        if int(steps) < 0:
            raise ValueError(f"full steps is {steps}; it must be 0 or more")
        self.full_steps = int(steps)
        self.then = as_strategy(then if then is not None else (3, 3, 3))
        self.tile = tuple(tile) if tile is not None else self.then.tile
        self.canvas = tuple(canvas) if canvas is not None else self.then.canvas

    def windows(self, step, layer, heads):
        if step < self.full_steps:
            return [FULL] * heads
        return self.then.windows(step, layer, heads)

    def steps(self):
        later = self.then.steps()
        if later is None:
            return list(range(self.full_steps + 1))  # the full steps and one step after them
        return sorted(set(range(self.full_steps)) | {s for s in later if s >= self.full_steps})

    def __repr__(self) -> str:
        return f"FullFirst({self.full_steps}, {self.then!r})"


_KEY = re.compile(r"^([0-9]+)_([0-9]+)_([0-9]+)$")


class MaskStrategy(WindowStrategy):
    """A window per (step, layer, head): FastVideo's mask-strategy JSON, as ``sta search`` writes it.

    ``entries``: ``{(step, layer, head): (kt, kh, kw)}``. Every (step, layer) a run asks for must list
    heads 0..<heads exactly; a step or layer that is absent is an error (the message lists what the file
    has), never a silent fallback.
    """

    def __init__(self, entries: Mapping[tuple[int, int, int], Sequence[int]], *, tile: Sequence[int] | None = None,
                 canvas: Sequence[int] | None = None, source: str = "<entries>"):
        self.source = source
        self._table: dict[tuple[int, int], dict[int, tuple[int, ...]]] = {}
        for key, window in entries.items():
            step, layer, head = (int(x) for x in key)
            if min(step, layer, head) < 0:
                raise ValueError(f"{source}: key {key} has a negative step, layer or head")
            self._table.setdefault((step, layer), {})[head] = _window_tuple(
                window, f"{source}: the window of {step}_{layer}_{head}")
        if not self._table:
            raise ValueError(f"{source}: the strategy has no entries")
        self._check_context(tile, canvas)

    # MARK: JSON

    @classmethod
    def from_json(cls, text: str, *, source: str = "<text>", **kw) -> "MaskStrategy":
        """Parses the flat JSON object; rejects repeated keys, malformed keys and non-window values."""
        def pairs(items):
            seen = {}
            for key, value in items:
                if key in seen:
                    raise ValueError(f"{source}: key \"{key}\" appears twice")
                seen[key] = value
            return seen

        try:
            root = json.loads(text, object_pairs_hook=pairs)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON ({error})") from None
        if not isinstance(root, dict):
            raise ValueError(f"{source}: the text is not a JSON object of \"<step>_<layer>_<head>\": [kt, kh, kw]")
        entries = {}
        for key, value in root.items():
            match = _KEY.match(key)
            if not match:
                raise ValueError(f"{source}: key \"{key}\" is not \"<step>_<layer>_<head>\" with non-negative integers")
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
                raise ValueError(f"{source}: window of \"{key}\" must be an array of positive integers (tiles)")
            entries[tuple(int(g) for g in match.groups())] = value
        return cls(entries, source=source, **kw)

    @classmethod
    def load(cls, path: str | os.PathLike, **kw) -> "MaskStrategy":
        """Reads a strategy file (``sta search --output``, FastVideo's mask_strategy JSON)."""
        path = os.fspath(path)
        with open(path, "r", encoding="utf-8") as file:
            return cls.from_json(file.read(), source=path, **kw)

    def to_json(self) -> str:
        """The flat JSON text, one entry per line sorted by step, layer, head (what ``sta search`` writes)."""
        lines = []
        for (step, layer), heads in sorted(self._table.items()):
            for head, window in sorted(heads.items()):
                if window is FULL:
                    raise ValueError(
                        f"the entry {step}_{layer}_{head} is FULL; JSON needs sizes: build the strategy with "
                        "resolved windows (MaskStrategy.from_strategy resolves them)")
                sizes = ", ".join(str(s) for s in window)
                lines.append(f'  "{step}_{layer}_{head}": [{sizes}]')
        return "{\n" + ",\n".join(lines) + "\n}\n"

    def save(self, path: str | os.PathLike) -> None:
        with open(os.fspath(path), "w", encoding="utf-8") as file:
            file.write(self.to_json())

    @classmethod
    def from_strategy(cls, strategy: WindowStrategy, *, steps: Iterable[int], layers: Iterable[int], heads: int,
                      grid: Sequence[int], **kw) -> "MaskStrategy":
        """Tabulates any strategy over steps × layers × heads with windows resolved against ``grid``
        (FULL becomes the grid), e.g. to write it as JSON."""
        layers = list(layers)
        entries = {}
        for step in steps:
            for layer in layers:
                for head, window in enumerate(strategy.resolved(step, layer, heads, grid)):
                    entries[(step, layer, head)] = window
        kw.setdefault("tile", strategy.tile)
        kw.setdefault("canvas", strategy.canvas)
        return cls(entries, **kw)

    # MARK: lookup

    def __len__(self) -> int:
        return sum(len(h) for h in self._table.values())

    def __getitem__(self, key: tuple[int, int, int]):
        step, layer, head = key
        return self._table[(step, layer)][head]

    def items(self):
        for (step, layer), heads in sorted(self._table.items()):
            for head, window in sorted(heads.items()):
                yield (step, layer, head), window

    def steps(self):
        return sorted({step for step, _ in self._table})

    def layers(self) -> list[int]:
        return sorted({layer for _, layer in self._table})

    def windows(self, step, layer, heads):
        entry = self._table.get((step, layer))
        if entry is None:
            steps = self.steps()
            if step not in steps:
                raise ValueError(f"{self.source}: the strategy has no entries for step {step} "
                                 f"(steps present: {_ranges(steps)})")
            layers = sorted(layer_ for step_, layer_ in self._table if step_ == step)
            raise ValueError(f"{self.source}: the strategy has no entries for layer {layer} at step {step} "
                             f"(layers present at that step: {_ranges(layers)})")
        missing = [h for h in range(heads) if h not in entry]
        if missing:
            raise ValueError(f"{self.source}: step {step}, layer {layer} lacks heads {_ranges(missing)}; the model has "
                             f"{heads} heads (0..{heads - 1}) and the strategy lists {_ranges(sorted(entry))}")
        extra = sorted(h for h in entry if h >= heads)
        if extra:
            raise ValueError(f"{self.source}: step {step}, layer {layer} lists heads {_ranges(extra)}; the model has "
                             f"only {heads} heads (0..{heads - 1})")
        return [entry[h] for h in range(heads)]

    def validate(self, *, steps: Iterable[int], layers: Iterable[int], heads: int, grid: Sequence[int]) -> None:
        """Raises for the first (step, layer, head) of ``steps`` × ``layers`` that is missing or whose window
        is bad on ``grid``."""
        self.window_sets(layers, heads, grid, steps=steps)

    def __repr__(self) -> str:
        return (f"MaskStrategy({self.source}, {len(self)} entries, steps {_ranges(self.steps())}, "
                f"layers {_ranges(self.layers())}, tile={self.tile})")


def load_strategy(path: str | os.PathLike, *, tile: Sequence[int] | None = None,
                  canvas: Sequence[int] | None = None) -> MaskStrategy:
    """Reads a mask-strategy JSON (``sta search --output``, FastVideo's format) as a ``MaskStrategy``."""
    return MaskStrategy.load(path, tile=tile, canvas=canvas)


def as_strategy(value) -> WindowStrategy:
    """A strategy from what a caller may pass: a strategy, a path to a JSON file, FULL / "full", one window
    such as (3, 3, 3), or a list of per-head windows."""
    if isinstance(value, WindowStrategy):
        return value
    if isinstance(value, (str, os.PathLike)) and not (isinstance(value, str) and value.lower() == "full"):
        return load_strategy(value)
    if value is None:
        raise TypeError("give a strategy: a WindowStrategy, a JSON path, a window such as (3, 3, 3), or FULL")
    return Uniform(value)


def _ranges(values: Sequence[int]) -> str:
    """'0..14, 20, 22..23' for a sorted list of ints."""
    values = list(values)
    if not values:
        return "none"
    parts, start, previous = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == previous + 1:
            previous = v
            continue
        parts.append(f"{start}" if start == previous else f"{start}..{previous}")
        if v is not None:
            start = previous = v
    return ", ".join(parts)
