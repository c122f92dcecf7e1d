"""Tile-aware sharding of the video tokens over the ranks of a context-parallel group, and the split of
attention heads for Ulysses.

Layout. The video tokens are kept in **tile order** (spec §2: tile index row-major over the tile grid
(nT, nH, nW), token offset row-major inside the tile, holes where a tile overhangs the canvas). With P
ranks and N = nT·nH·nW tiles, rank r holds the contiguous range of tiles [r·N/P, (r+1)·N/P), that is the
tile-order tokens [r·N/P·V, (r+1)·N/P·V) with V the tile volume. When P divides nT every rank holds whole
tile-frames (slabs of nT/P tile-frames = frames [r·T'/P, (r+1)·T'/P) of the padded canvas); otherwise a
rank's range ends inside a tile-frame at a tile-row boundary (or, for larger P, a tile boundary). Every
token of a tile lives on one rank, so the raster <-> tile permutation of a tile never crosses ranks, and
the ranks' shards concatenated in rank order are the full tile-order sequence, which is what the
Ulysses all-to-all reassembles. P must divide N: shards are equal, so the all-to-alls are balanced.

Heads. Rank r gets the contiguous heads [start_r, stop_r): the first H mod P ranks one head more than the
others (uneven splits: no padded heads travel or get computed; the all-to-alls take the split sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["TileSharding", "head_ranges", "valid_world_sizes"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def valid_world_sizes(canvas: Sequence[int], tile: Sequence[int], limit: int = 128) -> list[int]:
    """The world sizes (up to ``limit``) that split the canvas' tiles into equal whole-tile shards."""
    grid = [math.ceil(c / t) for c, t in zip(canvas, tile)]
    return [d for d in _divisors(math.prod(grid)) if d <= limit]


@dataclass(frozen=True)
class TileSharding:
    """Which tile-order video tokens each of ``world_size`` ranks holds (see the module docs).

    canvas, tile: as for ``sta.Plan`` (rank 1-3). Raises ValueError naming the allowed world sizes when
    ``world_size`` does not divide the number of tiles.
    """

    canvas: tuple
    tile: tuple
    world_size: int

    def __post_init__(self):
        canvas = tuple(int(c) for c in self.canvas)
        tile = tuple(int(t) for t in self.tile)
        object.__setattr__(self, "canvas", canvas)
        object.__setattr__(self, "tile", tile)
        if len(canvas) != len(tile) or not 1 <= len(canvas) <= 3:
            raise ValueError(f"canvas {canvas} and tile {tile} must have the same rank, 1 to 3")
        if any(c < 1 for c in canvas) or any(t < 1 for t in tile):
            raise ValueError(f"canvas {canvas} and tile {tile} must be positive")
        world = int(self.world_size)
        if world < 1:
            raise ValueError(f"world size {world} must be at least 1")
        if self.tiles % world:
            sizes = valid_world_sizes(canvas, tile, limit=max(64, world))
            raise ValueError(
                f"a context-parallel world of {world} ranks cannot share the {self.tiles} tiles of canvas "
                f"{canvas} in tiles of {tile} (tile grid {self.grid}) in whole tiles: each rank must hold the "
                f"same number of whole tiles. World sizes that would: {', '.join(map(str, sizes))}")

    # MARK: geometry

    @property
    def grid(self) -> tuple:
        """Tiles per axis (a tile overhanging the canvas counts)."""
        return tuple(math.ceil(c / t) for c, t in zip(self.canvas, self.tile))

    @property
    def tiles(self) -> int:
        return math.prod(self.grid)

    @property
    def tile_volume(self) -> int:
        return math.prod(self.tile)

    @property
    def padded_tokens(self) -> int:
        """Video tokens in tile order, holes included: tiles · tile volume."""
        return self.tiles * self.tile_volume

    @property
    def tiles_per_rank(self) -> int:
        return self.tiles // self.world_size

    @property
    def tokens_per_rank(self) -> int:
        """Tile-order video tokens (holes included) each rank holds."""
        return self.tiles_per_rank * self.tile_volume

    def tile_range(self, rank: int) -> range:
        """The tile indices (row-major over the tile grid) rank ``rank`` holds."""
        self._check_rank(rank)
        return range(rank * self.tiles_per_rank, (rank + 1) * self.tiles_per_rank)

    def token_range(self, rank: int) -> range:
        """The tile-order token indices rank ``rank`` holds."""
        self._check_rank(rank)
        return range(rank * self.tokens_per_rank, (rank + 1) * self.tokens_per_rank)

    def _check_rank(self, rank: int) -> None:
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} is outside 0..{self.world_size - 1}")

    def describe(self) -> str:
        """One line per rank: the tiles and what they are in tile-frames / tile rows."""
        lines = []
        slab = math.prod(self.grid[1:]) if len(self.grid) > 1 else 1
        for rank in range(self.world_size):
            tiles = self.tile_range(rank)
            first, last = tiles.start, tiles.stop - 1
            if len(self.grid) > 1 and tiles.start % slab == 0 and tiles.stop % slab == 0:
                where = f"tile-frames {first // slab}..{last // slab} (whole slabs)"
            else:
                where = f"tile {self._coordinates(first)} .. tile {self._coordinates(last)}"
            lines.append(f"rank {rank}: tiles {first}..{last}, tokens {self.token_range(rank).start}.."
                         f"{self.token_range(rank).stop - 1}: {where}")
        return "\n".join(lines)

    def _coordinates(self, index: int) -> tuple:
        coordinates = []
        for size in reversed(self.grid):
            coordinates.append(index % size)
            index //= size
        return tuple(reversed(coordinates))

    # MARK: tensors

    def shard(self, x, rank: int, dim: int = 1):
        """This rank's slice of a full tile-order video tensor along ``dim`` (a view)."""
        if x.shape[dim] != self.padded_tokens:
            raise ValueError(
                f"x.shape[{dim}] is {x.shape[dim]}; the tile-order video length of canvas {self.canvas} in tiles "
                f"of {self.tile} is {self.padded_tokens}")
        tokens = self.token_range(rank)
        return x.narrow(dim, tokens.start, len(tokens))


def head_ranges(heads: int, world_size: int) -> list[range]:
    """Contiguous head ranges per rank; the first ``heads % world_size`` ranks get one head more.

    Raises ValueError when there are fewer heads than ranks (a rank would have no heads to attend).
    """
    heads, world_size = int(heads), int(world_size)
    if world_size < 1:
        raise ValueError(f"world size {world_size} must be at least 1")
    if heads < world_size:
        raise ValueError(
            f"Ulysses needs at least one head per rank: {heads} heads cannot be spread over {world_size} ranks "
            f"(use at most {heads} ranks for the head dimension)")
    base, extra = divmod(heads, world_size)
    result, start = [], 0
    for rank in range(world_size):
        count = base + (1 if rank < extra else 0)
        result.append(range(start, start + count))
        start += count
    return result
