"""sta.Plan: a layout (canvas, tile, text) with one window per head, and the raster <-> tile permutation."""

from __future__ import annotations

import ctypes
import math
from typing import Iterable, Sequence

from . import _library
from ._arrays import LIMITS, checked_int, describe, empty_like_shape

__all__ = ["Plan"]


def _int_tuple(values: Iterable[int], name: str, minimum: int = 1,
               maximum: int = LIMITS["sequence_length"]) -> tuple[int, ...]:
    """A tuple of integers in ``minimum..maximum`` (the library's limits), checked before ctypes sees
    them so that nothing wraps."""
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, not {values!r}") from None
    if not 1 <= len(items) <= 3:
        raise ValueError(f"{name} {tuple(items)} has {len(items)} axes; give 1, 2 or 3")
    return tuple(checked_int(v, f"{name} axis {axis}", minimum, maximum) for axis, v in enumerate(items))


class Plan:
    """Sliding tile attention plan (spec §2): a canvas of video tokens cut into tiles, ``text`` text tokens
    after the video (the first ``text_valid`` real), and one window per head in tiles.

    ``Plan(canvas=(30, 48, 80), tile=(6, 8, 8), text=256, windows=[(3, 3, 3)] * 24)`` is the HunyuanVideo
    720p set-up. ``windows`` is a list of per-head windows, or one window together with ``heads=``.
    A window size at least the axis' tile count means the whole axis; smaller sizes must be odd.
    ``text_valid`` None means every text token is valid; otherwise 0..text. Every integer must be an int
    (or numpy integer) within the library's limits (``sta._arrays.LIMITS``, the table in docs/CLI.md):
    a value outside them is a ValueError before anything reaches the C library.

    Tensor shapes:
      * raster order (the model's): video tokens row-major over the canvas, then text:
        ``raster_length = video_tokens + text`` tokens;
      * tile order (the kernels'): video tokens tile by tile with holes where the tile does not divide the
        canvas, then text: ``sequence_length`` tokens.
    """

    def __init__(
        self,
        canvas: Sequence[int],
        tile: Sequence[int],
        text: int = 0,
        text_valid: int | None = None,
        windows: Sequence[Sequence[int]] | Sequence[int] = (),
        heads: int | None = None,
    ):
        canvas = _int_tuple(canvas, "canvas")
        tile = _int_tuple(tile, "tile")
        if len(canvas) != len(tile):
            raise ValueError(f"canvas {canvas} has {len(canvas)} axes but tile {tile} has {len(tile)}")
        text = checked_int(text, "text", 0, LIMITS["sequence_length"])
        # None means every text token is valid; a negative count is an error, not "all".
        if text_valid is not None:
            text_valid = checked_int(text_valid, "text_valid", 0, text)
        windows = list(windows)
        if windows and all(not isinstance(w, (list, tuple)) and hasattr(w, "__index__") for w in windows):
            windows = [tuple(windows)]  # one window given flat
        windows = [_int_tuple(w, "window", 1, LIMITS["sequence_length"]) for w in windows]
        if heads is not None:
            heads = checked_int(heads, "heads", 1, LIMITS["heads"])
            if len(windows) == 1:
                windows = windows * heads
            elif len(windows) != heads:
                raise ValueError(f"{len(windows)} windows were given for heads={heads}; give one, or one per head")
        if not windows:
            raise ValueError("give windows: a list of per-head windows in tiles, or one window and heads=")
        if len(windows) > LIMITS["heads"]:
            raise ValueError(f"{len(windows)} heads, which exceeds the limit of {LIMITS['heads']} (see the limits in docs/CLI.md)")
        rank = len(canvas)
        for head, window in enumerate(windows):
            if len(window) != rank:
                raise ValueError(f"the window of head {head} {window} has {len(window)} axes; the canvas has {rank}")
        self.canvas = canvas
        self.tile_shape = tile
        self.windows = windows
        lib = _library.library()
        array = ctypes.c_int64 * rank
        flat = (ctypes.c_int64 * (rank * len(windows)))(*[s for w in windows for s in w])
        buffer = _library.error_buffer()
        handle = lib.sta_plan_create(
            rank, array(*canvas), array(*tile), text, -1 if text_valid is None else text_valid,
            len(windows), flat, buffer, ctypes.sizeof(buffer))
        if not handle:
            raise _library.STAError(2, buffer.value.decode("utf-8", errors="replace"), "sta_plan_create")
        self._handle = ctypes.c_void_p(handle)
        values = [ctypes.c_int64() for _ in range(7)]
        _library.call("sta_plan_shape", self._handle, *[ctypes.byref(v) for v in values])
        (self.heads, self.video_tokens, self.padded_video_tokens, self.text, self.text_valid,
         self.raster_length, self.sequence_length) = (v.value for v in values)
        self._sequence_index = None
        self._device_indices = {}

    # MARK: lifetime

    def close(self) -> None:
        """Releases the plan (and CUDA kernels compiled for it). Called by the destructor."""
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            try:
                _library.call("sta_plan_destroy", handle)
            finally:
                self._handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def handle(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise ValueError("the plan was closed")
        return self._handle

    def __repr__(self) -> str:
        distinct = sorted(set(self.windows))
        return (f"sta.Plan(canvas={self.canvas}, tile={self.tile_shape}, text={self.text}/{self.text_valid}, "
                f"heads={self.heads}, windows={distinct}, S={self.sequence_length})")

    # MARK: sizes

    @property
    def video_sparsity(self) -> float:
        """Mean over heads of the skipped fraction of video-video pairs."""
        value = ctypes.c_double()
        _library.call("sta_plan_video_sparsity", self.handle, ctypes.byref(value))
        return value.value

    def effective_flops(self, batch: int, head_dim: int) -> float:
        """4 * head_dim * batch * attended real pairs (spec §3)."""
        batch = checked_int(batch, "batch", 1, LIMITS["batch"])
        head_dim = checked_int(head_dim, "head_dim", 1, LIMITS["head_dim"])
        value = ctypes.c_double()
        _library.call("sta_plan_effective_flops", self.handle, batch, head_dim, ctypes.byref(value))
        return value.value

    def sequence_index(self):
        """For each raster-order video token, its index in the tile-order sequence (numpy int64 array)."""
        import numpy as np

        if self._sequence_index is None:
            indices = np.empty(self.video_tokens, dtype=np.int64)
            _library.call(
                "sta_plan_sequence_index", self.handle,
                indices.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), self.video_tokens)
            indices.flags.writeable = False
            self._sequence_index = indices
        return self._sequence_index

    # MARK: permutation

    def tile(self, x, dim: int = 1):
        """Raster order -> tile order along axis ``dim`` (x.shape[dim] == raster_length); holes are zero.

        Works on numpy arrays and torch tensors (CPU: the library's byte copy; CUDA: one scatter on the
        tensor's device). [B, S, H, D] uses dim=1, [B, H, S, D] dim=2. Returns a new contiguous tensor
        with shape[dim] == sequence_length.
        """
        return self._permute(x, dim, to_tile_order=True)

    def untile(self, x, dim: int = 1):
        """Tile order -> raster order along axis ``dim``, the exact inverse of ``tile`` (holes dropped)."""
        return self._permute(x, dim, to_tile_order=False)

    def _permute(self, x, dim: int, to_tile_order: bool):
        info = describe(x)
        ndim = len(info.shape)
        dim = checked_int(dim, "dim", -(1 << 62), 1 << 62)
        if not -ndim <= dim < ndim:
            raise ValueError(f"dim {dim} is out of range for a tensor of {ndim} dimensions")
        dim %= ndim
        expected, produced = ((self.raster_length, self.sequence_length) if to_tile_order
                              else (self.sequence_length, self.raster_length))
        name = "tile" if to_tile_order else "untile"
        if info.shape[dim] != expected:
            order = "raster-order (video + text)" if to_tile_order else "tile-order (padded video + text)"
            raise ValueError(
                f"plan.{name}: x.shape[{dim}] is {info.shape[dim]}; this plan's {order} length is {expected} "
                f"(shape {tuple(info.shape)}; pass dim= for the token axis)")
        out_shape = list(info.shape)
        out_shape[dim] = produced
        if info.is_cuda:
            return self._permute_torch_device(x, dim, to_tile_order, out_shape)
        x = info.contiguous()
        info = describe(x)
        out = empty_like_shape(x, out_shape)
        outer = math.prod(info.shape[:dim])
        inner_bytes = math.prod(info.shape[dim + 1:]) * info.itemsize
        _library.call(
            "sta_tile" if to_tile_order else "sta_untile", self.handle, ctypes.c_void_p(info.pointer),
            ctypes.c_void_p(describe(out).pointer), outer, inner_bytes)
        return out

    def _device_index(self, device):
        """The sequence index of every raster token, text included, as an int64 tensor on ``device``."""
        import numpy as np
        import torch

        index = self._device_indices.get(device)
        if index is None:
            text = np.arange(self.padded_video_tokens, self.sequence_length, dtype=np.int64)
            full = np.concatenate([self.sequence_index(), text])
            index = torch.from_numpy(full).to(device)
            self._device_indices[device] = index
        return index

    def _permute_torch_device(self, x, dim: int, to_tile_order: bool, out_shape):
        index = self._device_index(x.device)
        if to_tile_order:
            # One scatter into zeros: holes stay zero.
            return x.new_zeros(out_shape).index_copy_(dim, index, x)
        # One gather.
        return x.index_select(dim, index)
