"""FlexAttention with the sliding tile attention mask of an ``sta.Plan``, for comparisons with ``sta``.

Everything works in the plan's tile order (video tile by tile with holes, then the text), the order
``sta.attention`` takes, so FlexAttention and STA see the very same tensors.

The mask is described by *units*: every real video token belongs to the unit of its tile, every valid
text token to one text unit, and holes and padding text to a unit that attends nothing and that nothing
attends. The spec's rule (§2) is then a [H, U, U] boolean table ``allowed``: tile to tile by the window
(clamped centres, a window at least the grid's extent covers the whole axis), tile to text and text to
anything real always, the empty unit never. ``mask_mod`` looks the table up per token pair, and the block
mask classifies each (query block, key block) pair from the units present in the two blocks: *full* when
every present pair is allowed, *partial* when some are, skipped otherwise.

Cost: the tables are O(H · U²) booleans (U = tiles + 2) and three [H, blocks, U] × [U, blocks] products;
nothing of size S × S is built except by ``dense_mask`` (meant for small problems).
"""

from __future__ import annotations

import itertools
import math

import torch

__all__ = ["units", "block_flags", "block_mask", "dense_mask", "masked_attention", "flex_attention"]


def _grid(plan):
    return [-(-c // t) for c, t in zip(plan.canvas, plan.tile_shape)]


def units(plan, device):
    """(unit [S] int64, allowed [H, U, U] bool): unit t < tiles for the real tokens of tile t, ``tiles``
    for the valid text, ``tiles + 1`` for holes and padding text."""
    grid = _grid(plan)
    tiles = math.prod(grid)
    volume = math.prod(plan.tile_shape)
    text_unit, empty_unit = tiles, tiles + 1
    real = torch.zeros(plan.padded_video_tokens, dtype=torch.bool)
    real[torch.from_numpy(plan.sequence_index().copy())] = True
    video_unit = torch.arange(plan.padded_video_tokens) // volume
    video_unit = torch.where(real, video_unit, torch.full_like(video_unit, empty_unit))
    text = torch.full((plan.text,), empty_unit, dtype=torch.int64)
    text[:plan.text_valid] = text_unit
    unit = torch.cat([video_unit, text])

    # Tile coordinates in row-major tile order, and the window rule per axis.
    coordinates = torch.tensor(list(itertools.product(*[range(n) for n in grid])), dtype=torch.int64)
    allowed = torch.zeros(plan.heads, tiles + 2, tiles + 2, dtype=torch.bool)
    for head, window in enumerate(plan.windows):
        video = torch.ones(tiles, tiles, dtype=torch.bool)
        for axis, (size, extent) in enumerate(zip(window, grid)):
            if size >= extent:
                continue
            radius = size // 2
            centre = coordinates[:, axis].clamp(radius, extent - 1 - radius)
            video &= (centre[:, None] - coordinates[None, :, axis]).abs() <= radius
        allowed[head, :tiles, :tiles] = video
        allowed[head, :tiles + 1, text_unit] = True   # every real query sees the valid text
        allowed[head, text_unit, :tiles + 1] = True   # valid text sees every real key
    return unit.to(device), allowed.to(device)


def _mask_mod(unit, allowed):
    def mask_mod(batch, head, query, key):
        return allowed[head, unit[query], unit[key]]

    return mask_mod


def block_flags(plan, device, block_size: int = 128):
    """(full, partial): [H, blocks, blocks] booleans per (query block, key block). Full: every token pair
    of the two blocks is allowed; partial: some are and some are not; neither: none is."""
    unit, allowed = units(plan, device)
    length = plan.sequence_length
    blocks = -(-length // block_size)
    present = torch.zeros(blocks, allowed.shape[-1], device=device)
    present[torch.arange(length, device=device) // block_size, unit] = 1.0
    yes = allowed.float()
    # Per head: does some present (query unit, key unit) pair allow / forbid attention?
    some_allowed = (present @ yes @ present.T) > 0
    some_forbidden = (present @ (1.0 - yes) @ present.T) > 0
    return some_allowed & ~some_forbidden, some_allowed & some_forbidden


def block_mask(plan, device, block_size: int = 128):
    """A FlexAttention ``BlockMask`` (batch broadcast) equal to the plan's STA mask."""
    from torch.nn.attention.flex_attention import BlockMask

    unit, allowed = units(plan, device)
    full, partial = block_flags(plan, device, block_size)

    def as_lists(flags):
        # Counts and the flagged key blocks first (ascending), as FlexAttention's block lists.
        order = torch.sort((~flags).to(torch.int8), dim=-1, stable=True).indices
        return flags.sum(-1).to(torch.int32)[None], order.to(torch.int32)[None]

    partial_count, partial_index = as_lists(partial)
    full_count, full_index = as_lists(full)
    length = plan.sequence_length
    return BlockMask.from_kv_blocks(
        partial_count, partial_index, full_count, full_index, BLOCK_SIZE=block_size,
        mask_mod=_mask_mod(unit, allowed), seq_lengths=(length, length))


def dense_mask(plan, device) -> torch.Tensor:
    """[H, S, S] boolean: may query i attend key j under head h (small problems only)."""
    unit, allowed = units(plan, device)
    return allowed[:, unit[:, None], unit[None, :]]


def masked_attention(q, k, v, mask, scale):
    """softmax(scale · q kᵀ) v under an explicit [H, S, S] mask, differentiable, in q's dtype; rows without
    any key give 0 (as STA's and FlexAttention's do). Materialises [B, H, S, S]: small problems only."""
    scores = (q @ k.transpose(-1, -2)) * scale
    any_key = mask.any(-1, keepdim=True)
    scores = torch.where(mask, scores, torch.full_like(scores, -math.inf))
    weights = torch.softmax(torch.where(any_key, scores, torch.zeros_like(scores)), dim=-1) * any_key
    return weights @ v


_compiled = {}


def flex_attention(q, k, v, mask, scale=None):
    """FlexAttention (compiled once per process on CUDA; eager on the CPU, forward only there)."""
    from torch.nn.attention.flex_attention import flex_attention as flex

    if q.is_cuda:
        function = _compiled.get("flex")
        if function is None:
            function = _compiled["flex"] = torch.compile(flex, dynamic=False)
        return function(q, k, v, block_mask=mask, scale=scale)
    return flex(q, k, v, block_mask=mask, scale=scale)
