"""The bytes model: what one denoising step sends per GPU under Ulysses and under halo exchange.

Ulysses (what ``UlyssesAttention`` does), per attention call and rank r with h_r of the H heads and
S_p / P of the S_p tile-order video tokens (holes included):
  * in:  q, k, v — the rank's tokens for every other rank's heads: 3 · B · (S_p / P) · (H − h_r) · D · e
  * out: the rank's heads for every other rank's tokens, plus its heads of the L text rows for every other
         rank: B · h_r · ((S_p − S_p / P) + (P − 1) · L) · D · e
Ulysses needs P ≤ H (every rank at least one head).

Halo exchange (not implemented; the alternative the model weighs): the canvas is sharded in contiguous
ranges of whole tiles (Ulysses' shards where P divides the tiles; slabs along T where P divides the
tile-frames) and every rank keeps all heads. A rank receives, per head, the K and V tiles inside the
windows of its query tiles that it does not hold: Σ_h |needed_h − own| · V · B · D · e · 2 (V the tile
volume). Text keys and values are
replicated (no traffic), but text queries attend every video key, so their partial outputs and
log-sum-exps are combined across ranks: an all-reduce of B · H · L · (D + 1) fp32 values, 2 · (P − 1) / P
of it per rank (ring). Video outputs stay local.

e is the element size (2 for bf16). The figures are bytes a rank sends (Ulysses: sends equal receives
summed over ranks) or receives (halo), the larger over ranks, per attention call and per step.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

from .sharding import head_ranges

__all__ = ["Shape", "ulysses_bytes", "halo_bytes", "hybrid_bytes", "ulysses_group_bytes", "SHAPES", "tile_shards"]


@dataclass(frozen=True)
class Shape:
    """One model's attention problem and layer count."""

    name: str
    canvas: tuple
    tile: tuple
    heads: int
    head_dim: int
    text: int
    layers: int
    batch: int = 1
    element_size: int = 2

    @property
    def grid(self) -> tuple:
        return tuple(math.ceil(c / t) for c, t in zip(self.canvas, self.tile))

    @property
    def tile_volume(self) -> int:
        return math.prod(self.tile)

    @property
    def padded_tokens(self) -> int:
        return math.prod(self.grid) * self.tile_volume


SHAPES = {
    "hunyuan": Shape("hunyuan", (30, 48, 80), (6, 8, 8), heads=24, head_dim=128, text=256, layers=60),
    "wan": Shape("wan", (21, 45, 80), (6, 8, 8), heads=40, head_dim=128, text=0, layers=40),
}


def tile_shards(tiles: int, world: int) -> list[range]:
    """Contiguous whole-tile ranges: equal when ``world`` divides ``tiles`` (then ``TileSharding``'s), else
    the first ``tiles % world`` ranks one tile more (the halo model's estimate for such sizes)."""
    base, extra = divmod(tiles, world)
    result, start = [], 0
    for rank in range(world):
        count = base + (1 if rank < extra else 0)
        result.append(range(start, start + count))
        start += count
    return result


def ulysses_bytes(shape: Shape, world: int) -> int | None:
    """Bytes the busiest rank sends per attention call; None when world > heads."""
    if world > shape.heads:
        return None
    if world == 1:
        return 0
    e, b, d = shape.element_size, shape.batch, shape.head_dim
    local = shape.padded_tokens / world
    worst = 0.0
    for heads in head_ranges(shape.heads, world):
        h = len(heads)
        sent = 3 * b * local * (shape.heads - h) * d * e
        sent += b * h * ((shape.padded_tokens - local) + (world - 1) * shape.text) * d * e
        worst = max(worst, sent)
    return int(worst)


def _window_tiles(query: Sequence[int], window: Sequence[int], grid: Sequence[int]):
    """Key tiles in the window of a query tile (spec §2: centre clamped inward)."""
    axes = []
    for q, k, n in zip(query, window, grid):
        if k >= n:
            axes.append(range(n))
            continue
        r = k // 2
        c = min(max(q, r), n - 1 - r)
        axes.append(range(c - r, c + r + 1))
    return itertools.product(*axes)


def _index(coordinates, grid) -> int:
    index = 0
    for c, n in zip(coordinates, grid):
        index = index * n + c
    return index


def _coordinates(index, grid) -> tuple:
    result = []
    for n in reversed(grid):
        result.append(index % n)
        index //= n
    return tuple(reversed(result))


def halo_tiles(shape: Shape, world: int, window: Sequence[int]) -> int:
    """The most key tiles one rank needs from other ranks for one head with ``window``."""
    grid = shape.grid
    worst = 0
    for shard in tile_shards(math.prod(grid), world):
        own = set(shard)
        needed = set()
        for tile in shard:
            for key in _window_tiles(_coordinates(tile, grid), window, grid):
                needed.add(_index(key, grid))
        worst = max(worst, len(needed - own))
    return worst


def halo_bytes(shape: Shape, world: int, windows: Sequence[Sequence[int]]) -> int:
    """Bytes the busiest rank receives per attention call under halo exchange, ``windows`` per head."""
    if world == 1:
        return 0
    e, b, d = shape.element_size, shape.batch, shape.head_dim
    counts = {}
    for window in windows:
        counts[tuple(window)] = counts.get(tuple(window), 0) + 1
    kv = sum(halo_tiles(shape, world, w) * n for w, n in counts.items()) * shape.tile_volume * b * d * e * 2
    text = 0
    if shape.text:
        text = 2 * (world - 1) / world * b * shape.heads * shape.text * (d + 1) * 4
    return int(kv + text)


def ulysses_group_bytes(shape: Shape, ulysses: int, groups: int) -> float:
    """The Ulysses part of the hybrid: exchanges among ``ulysses`` ranks of one group's tokens."""
    if ulysses == 1:
        return 0.0
    e, b, d = shape.element_size, shape.batch, shape.head_dim
    local = shape.padded_tokens / (ulysses * groups)
    group_tokens = shape.padded_tokens / groups
    worst = 0.0
    for heads in head_ranges(shape.heads, ulysses):
        h = len(heads)
        sent = 3 * b * local * (shape.heads - h) * d * e
        sent += b * h * ((group_tokens - local) + (ulysses - 1) * shape.text) * d * e
        worst = max(worst, sent)
    return worst


def hybrid_bytes(shape: Shape, ulysses: int, groups: int, windows: Sequence[Sequence[int]]) -> int | None:
    """Ulysses over ``ulysses`` ranks (one node) inside each of ``groups`` halo groups (the canvas in
    ``groups`` contiguous tile ranges): bytes the busiest rank moves per attention call — the Ulysses
    exchanges of its group's tokens, plus the halo of its own heads (H / ulysses of them) from the
    neighbouring groups."""
    if ulysses > shape.heads:
        return None
    e, b, d = shape.element_size, shape.batch, shape.head_dim
    worst_ulysses = ulysses_group_bytes(shape, ulysses, groups)
    halo = 0.0
    if groups > 1:
        # The busiest rank holds the widest-window heads: assign heads to ranks in order, as Ulysses does.
        per_rank = head_ranges(shape.heads, ulysses)
        for heads in per_rank:
            tiles = sum(halo_tiles(shape, groups, windows[h]) for h in heads)
            halo = max(halo, tiles * shape.tile_volume * b * d * e * 2)
        if shape.text:
            halo += 2 * (groups - 1) / groups * b * (shape.heads / ulysses) * shape.text * (d + 1) * 4
    return int(worst_ulysses + halo)
