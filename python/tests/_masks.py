"""The spec's attention mask (§2) built in tile order from a plan's geometry, and float64 references.

Derived from the spec's definitions (tile grid, row-major tile order, clamped window centres, text rules)
and the plan's canvas, tile, text and windows only; the plan's own sequence index is what it is checked
against, not what it is built from.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def tile_order_positions(plan):
    """For every tile-order video position (padded_video_tokens of them): its tile coordinates [P, rank]
    and whether it is a real token (not a hole)."""
    canvas, tile = plan.canvas, plan.tile_shape
    rank = len(canvas)
    grid = [-(-c // t) for c, t in zip(canvas, tile)]
    tiles, real = [], []
    for tile_coords in itertools.product(*[range(n) for n in grid]):
        for offset in itertools.product(*[range(t) for t in tile]):
            token = [tile_coords[a] * tile[a] + offset[a] for a in range(rank)]
            tiles.append(tile_coords)
            real.append(all(token[a] < canvas[a] for a in range(rank)))
    assert len(tiles) == plan.padded_video_tokens == math.prod(g * t for g, t in zip(grid, tile))
    return np.array(tiles, dtype=np.int64).reshape(-1, rank), np.array(real, dtype=bool), grid


def tile_order_mask(plan, head: int, text_valid: int) -> np.ndarray:
    """[S, S] boolean: may query row i attend key j, for one head and one batch row's valid text length."""
    tiles, real, grid = tile_order_positions(plan)
    window = plan.windows[head]
    video = np.outer(real, real)
    for a, size in enumerate(window):
        if size >= grid[a]:
            continue
        radius = size // 2
        centre = np.clip(tiles[:, a], radius, grid[a] - 1 - radius)
        video &= np.abs(centre[:, None] - tiles[None, :, a]) <= radius
    p, s = plan.padded_video_tokens, plan.sequence_length
    mask = np.zeros((s, s), dtype=bool)
    mask[:p, :p] = video
    valid_text = np.zeros(s, dtype=bool)
    valid_text[p:p + text_valid] = True
    mask[np.flatnonzero(real)] |= valid_text              # real video queries see every valid text key
    mask[p:p + text_valid, :p] = real                     # valid text queries see every real video key
    mask[p:p + text_valid] |= valid_text                  # ... and every valid text key
    return mask


def masks(plan, text_valid_rows) -> np.ndarray:
    """[B, H, S, S] for per-row valid text lengths."""
    return np.stack([np.stack([tile_order_mask(plan, h, int(t)) for h in range(plan.heads)])
                     for t in text_valid_rows])


def reference_numpy(q, k, v, mask, scale):
    """float64 out [B, H, S, D] and lse [B, H, S] under mask [B, H, S, S]; empty rows give 0 and -inf."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scores = np.where(mask, np.einsum("bhqd,bhkd->bhqk", q, k) * scale, -np.inf)
    peak = scores.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    weights = np.exp(scores - peak)
    total = weights.sum(axis=-1, keepdims=True)
    out = np.einsum("bhqk,bhkd->bhqd", weights / np.where(total > 0, total, 1), v)
    lse = np.where(total[..., 0] > 0, np.log(np.maximum(total[..., 0], 1e-300)) + peak[..., 0], -np.inf)
    return out, lse


def reference_torch(q, k, v, mask, scale):
    """The same in torch (differentiable; use float64 inputs); mask a bool tensor [B, H, S, S]."""
    import torch

    scores = (q @ k.transpose(-1, -2)) * scale
    any_key = mask.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~mask, float("-inf"))
    scores = torch.where(any_key, scores, torch.zeros_like(scores))   # empty rows: finite, then zeroed
    weights = torch.softmax(scores, dim=-1) * any_key
    lse = torch.where(any_key[..., 0], torch.logsumexp(scores, dim=-1), torch.full_like(scores[..., 0], -np.inf))
    return weights @ v, lse
