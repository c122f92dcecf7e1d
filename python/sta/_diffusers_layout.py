"""The permutation between a model's joint sequence and the kernels' tile order, built on the device.

A model's attention holds q, k, v as [B, S, H, D] with the S tokens in its own order: the video tokens
in raster order (frame, row, column) and the text tokens either after them (HunyuanVideo) or before them
(FLUX). The kernels read [B, H, S', D] with the video tokens in tile-contiguous order (holes where the
tile does not divide the canvas), then the text. ``JointLayout`` holds the two index vectors that move
between them; ``to_tiles`` and ``from_tiles`` are one gather each.

Cost per call: ``to_tiles`` reads the strided [B, S, H, D] input once and writes the contiguous
[B, H, S', D] output once (the transpose and the permutation are one pass); ``from_tiles`` likewise.
The indices are computed with torch operations on the target device (no host-to-device copy) once per
(canvas, tile, text count, text position, device).
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["JointLayout", "raster_to_tile_order"]


def raster_to_tile_order(canvas: Sequence[int], tile: Sequence[int], device=None):
    """For each raster-order video token, its index in the tile-contiguous order (spec §2), as an int64
    tensor on ``device``: tileIndex · tileVolume + offsetInTile, both row-major."""
    import torch

    canvas = [int(c) for c in canvas]
    tile = [int(t) for t in tile]
    grid = [-(-c // t) for c, t in zip(canvas, tile)]
    volume = math.prod(tile)
    rest = torch.arange(math.prod(canvas), device=device, dtype=torch.int64)
    coordinates = []
    for size in reversed(canvas):
        coordinates.append(rest % size)
        rest = rest // size
    coordinates.reverse()
    tile_index = torch.zeros_like(coordinates[0])
    offset = torch.zeros_like(coordinates[0])
    for coordinate, size, count in zip(coordinates, tile, grid):
        tile_index = tile_index * count + coordinate // size
        offset = offset * size + coordinate % size
    return tile_index * volume + offset


class JointLayout:
    """Indices between the model's token order and tile order for one (canvas, tile, text, text_first).

    ``model_to_tile[i]``: the tile-order position of model token i (S entries).
    ``tile_to_model[j]``: the model token at tile-order position j (S' entries); a hole points at token 0
    (its value is never attended, and its output row is dropped by ``from_tiles``).
    """

    def __init__(self, canvas: Sequence[int], tile: Sequence[int], text: int, text_first: bool, device):
        import torch

        self.canvas = tuple(int(c) for c in canvas)
        self.tile = tuple(int(t) for t in tile)
        self.text = int(text)
        self.text_first = bool(text_first)
        self.video = math.prod(self.canvas)
        grid = [-(-c // t) for c, t in zip(self.canvas, self.tile)]
        self.padded_video = math.prod(grid) * math.prod(self.tile)
        self.model_length = self.video + self.text
        self.tile_length = self.padded_video + self.text
        video_positions = raster_to_tile_order(self.canvas, self.tile, device)
        text_positions = torch.arange(self.padded_video, self.tile_length, device=device, dtype=torch.int64)
        parts = [text_positions, video_positions] if self.text_first else [video_positions, text_positions]
        self.model_to_tile = torch.cat(parts)
        gather = torch.zeros(self.tile_length, device=device, dtype=torch.int64)
        gather[self.model_to_tile] = torch.arange(self.model_length, device=device, dtype=torch.int64)
        self.tile_to_model = gather
        self.has_holes = self.padded_video != self.video
        self._holes = None

    @property
    def video_slice(self) -> slice:
        """Where the video tokens are in the model's order."""
        return slice(self.text, self.model_length) if self.text_first else slice(0, self.video)

    def holes(self):
        """Tile-order positions that hold no token (int64 tensor; computed once, one device sync)."""
        import torch

        if self._holes is None:
            filled = torch.zeros(self.tile_length, dtype=torch.bool, device=self.model_to_tile.device)
            filled[self.model_to_tile] = True
            self._holes = (~filled).nonzero().flatten()
        return self._holes

    def to_tiles(self, x):
        """[B, S, H, D] in the model's order -> contiguous [B, H, S', D] in tile order (text last)."""
        if x.shape[1] != self.model_length:
            raise ValueError(f"the attention got {x.shape[1]} tokens; the layout has {self.video} video + "
                             f"{self.text} text = {self.model_length}")
        wide = _as_words(x)
        if wide is None:
            return x.transpose(1, 2).index_select(2, self.tile_to_model)
        return wide.transpose(1, 2).index_select(2, self.tile_to_model).view(x.dtype)

    def from_tiles(self, out):
        """[B, H, S', D] in tile order -> contiguous [B, S, H, D] in the model's order (holes dropped)."""
        wide = _as_words(out)
        if wide is None:
            return out.transpose(1, 2).index_select(1, self.model_to_tile)
        return wide.transpose(1, 2).index_select(1, self.model_to_tile).view(out.dtype)


def _as_words(x):
    """``x`` viewed with 8-byte elements along its last axis (a bf16 row of 128 becomes 32 int64), so that a
    gather moves a quarter as many elements; None where that view is not possible (autograd, odd strides,
    a last axis that is not a whole number of words)."""
    import torch

    if x.requires_grad or x.stride(-1) != 1 or x.dtype == torch.int64:
        return None
    ratio = 8 // x.element_size()
    if ratio < 1 or 8 % x.element_size() or x.shape[-1] % ratio or x.storage_offset() % ratio:
        return None
    if any(stride % ratio for stride in x.stride()[:-1]):
        return None
    return x.view(torch.int64)
