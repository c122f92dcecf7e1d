"""Tile-aware sharding of the video tokens over the ranks of a context-parallel group, and the split of
attention heads for Ulysses.

Layout. The video tokens are kept in **tile order** (spec §2: tile index row-major over the tile grid
(nT, nH, nW), token offset row-major inside the tile, holes where a tile overhangs the canvas): the
model's hidden states are permuted once, whole, before they are sharded. With P ranks and T = N·V
tile-order tokens (N = nT·nH·nW tiles of V tokens), rank r holds the contiguous tokens [r·T/P, (r+1)·T/P).
When P divides N these are whole tiles, and when P divides nT whole tile-frames (slabs of nT/P
tile-frames = frames [r·T'/P, (r+1)·T'/P) of the padded canvas); otherwise a rank's range ends inside a
tile-frame or inside a tile (HunyuanVideo 720p's 300 tiles on 8 ranks: 37.5 tiles each). Ulysses
reassembles the whole sequence (the ranks' shards concatenated in rank order) before it attends, so
nothing needs whole tiles per rank. P must divide T: shards are equal, so the all-to-alls are balanced.

Heads. Rank r gets the contiguous heads [start_r, stop_r): the first H mod P ranks one head more than the
others (uneven splits: no padded heads travel or get computed; the all-to-alls take the split sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["TileSharding", "head_ranges", "valid_world_sizes"]


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def valid_world_sizes(canvas: Sequence[int], tile: Sequence[int], limit: int = 128) -> list[int]:
    """The world sizes (up to ``limit``) that split the canvas' tile-order tokens into equal shards."""
    grid = [math.ceil(c / t) for c, t in zip(canvas, tile)]
    return _divisors(math.prod(grid) * math.prod(tile), limit)


@dataclass(frozen=True)
class TileSharding:
    """Which tile-order video tokens each of ``world_size`` ranks holds (see the module docs).

    canvas, tile: as for ``sta.Plan`` (rank 1-3). Raises ValueError naming the allowed world sizes when
    ``world_size`` does not divide the number of tile-order tokens.
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
        if self.padded_tokens % world:
            sizes = valid_world_sizes(canvas, tile, limit=max(64, world))
            raise ValueError(
                f"a context-parallel world of {world} ranks cannot share the {self.padded_tokens} tile-order "
                f"tokens of canvas {canvas} in tiles of {tile} ({self.tiles} tiles of {self.tile_volume}) in equal "
                f"shards. World sizes that would: {', '.join(map(str, sizes))}")

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
    def tokens_per_rank(self) -> int:
        """Tile-order video tokens (holes included) each rank holds."""
        return self.padded_tokens // self.world_size

    @property
    def tiles_per_rank(self) -> float:
        """Tiles' worth of tokens each rank holds: whole when ``world_size`` divides ``tiles``."""
        return self.tokens_per_rank / self.tile_volume

    def token_range(self, rank: int) -> range:
        """The tile-order token indices rank ``rank`` holds."""
        self._check_rank(rank)
        return range(rank * self.tokens_per_rank, (rank + 1) * self.tokens_per_rank)

    def tile_range(self, rank: int) -> range:
        """The tiles (row-major over the tile grid) holding rank ``rank``'s tokens; the first and the last
        may be shared with the neighbouring ranks when the shards end inside tiles."""
        tokens = self.token_range(rank)
        return range(tokens.start // self.tile_volume, -(-tokens.stop // self.tile_volume))

    def _check_rank(self, rank: int) -> None:
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} is outside 0..{self.world_size - 1}")

    def describe(self) -> str:
        """One line per rank: its tokens, and what they are in tile-frames, tiles or parts of tiles."""
        lines = []
        volume = self.tile_volume
        slab = math.prod(self.grid[1:]) * volume if len(self.grid) > 1 else volume
        for rank in range(self.world_size):
            tokens, tiles = self.token_range(rank), self.tile_range(rank)
            first, last = tiles.start, tiles.stop - 1
            if len(self.grid) > 1 and tokens.start % slab == 0 and tokens.stop % slab == 0:
                where = f"tile-frames {tokens.start // slab}..{(tokens.stop - 1) // slab} (whole slabs)"
            else:
                where = f"tile {self._coordinates(first)} .. tile {self._coordinates(last)}"
                if tokens.start % volume or tokens.stop % volume:
                    where += (f" (from token {tokens.start % volume} of the first tile to token "
                              f"{(tokens.stop - 1) % volume} of the last)")
            lines.append(f"rank {rank}: tiles {first}..{last}, tokens {tokens.start}..{tokens.stop - 1}: {where}")
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
