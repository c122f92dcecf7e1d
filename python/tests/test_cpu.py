"""The Python package against a numpy float64 reference, on the CPU (no torch needed).

Loads the library built by `swift build` (STA_LIBRARY, or the repository's .build folders); the whole
module is skipped when none is found.
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)


# MARK: an independent statement of the spec's mask, in raster order


def allowed_mask(canvas, tile, text, text_valid, window):
    """[S_raster, S_raster] boolean mask of spec §2 for one head, video in raster order then text."""
    rank = len(canvas)
    grid = [-(-c // t) for c, t in zip(canvas, tile)]
    positions = list(itertools.product(*[range(c) for c in canvas]))
    tiles = np.array([[p[a] // tile[a] for a in range(rank)] for p in positions])  # [N, rank]
    centres = np.empty_like(tiles)
    for a in range(rank):
        if window[a] >= grid[a]:
            centres[:, a] = -1  # whole axis
        else:
            r = window[a] // 2
            centres[:, a] = np.clip(tiles[:, a], r, grid[a] - 1 - r)
    n = len(positions)
    video = np.ones((n, n), dtype=bool)
    for a in range(rank):
        if window[a] >= grid[a]:
            continue
        r = window[a] // 2
        video &= np.abs(centres[:, a][:, None] - tiles[:, a][None, :]) <= r
    s = n + text
    mask = np.zeros((s, s), dtype=bool)
    mask[:n, :n] = video
    mask[:n, n:n + text_valid] = True
    mask[n:n + text_valid, :n + text_valid] = True
    return mask


def reference(q, k, v, masks, scale):
    """float64 attention per head under masks[h]; q, k, v [B, H, S, D] raster order."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    mask = np.stack(masks)[None]
    scores = np.where(mask, scores, -np.inf)
    peak = scores.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    weights = np.exp(scores - peak)
    total = weights.sum(axis=-1, keepdims=True)
    out = np.einsum("bhqk,bhkd->bhqd", weights / np.where(total > 0, total, 1), v)
    lse = np.where(total[..., 0] > 0, np.log(np.where(total[..., 0] > 0, total[..., 0], 1)) + peak[..., 0], -np.inf)
    return out, lse


CASES = [
    # canvas, tile, text, text_valid, per-head windows
    ((5, 6, 7), (2, 4, 4), 3, 2, [(1, 3, 1), (3, 1, 3), (9, 9, 9)]),
    ((9, 10), (4, 4), 0, 0, [(1, 1), (3, 3)]),
    ((40,), (8,), 5, 5, [(3,)]),
]


@pytest.mark.parametrize("canvas,tile,text,text_valid,windows", CASES)
@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 1e-4), (np.float16, 3e-3)])
def test_attention_matches_float64_reference(canvas, tile, text, text_valid, windows, dtype, tolerance):
    plan = sta.Plan(canvas=canvas, tile=tile, text=text, text_valid=text_valid, windows=windows)
    rng = np.random.default_rng(7)
    batch, heads, head_dim = 2, len(windows), 16
    q, k, v = (rng.standard_normal((batch, heads, plan.raster_length, head_dim)).astype(dtype) for _ in range(3))
    tiled = [plan.tile(x, dim=2) for x in (q, k, v)]
    out_tiled, lse_tiled = sta.attention(*tiled, plan, threads=2)
    assert out_tiled.dtype == dtype and out_tiled.shape == tiled[0].shape
    assert lse_tiled.dtype == np.float32 and lse_tiled.shape == tiled[0].shape[:3]
    out = plan.untile(out_tiled, dim=2)
    lse = plan.untile(lse_tiled, dim=2)

    scale = 1 / np.sqrt(head_dim)
    masks = [allowed_mask(canvas, tile, text, text_valid, w) for w in windows]
    ref_out, ref_lse = reference(q, k, v, masks, scale)
    real = np.arange(plan.raster_length) < plan.video_tokens + text_valid  # padding text rows are ignored
    got = out[:, :, real].astype(np.float64)
    want = ref_out[:, :, real]
    assert not np.isnan(got).any()
    error = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert error < tolerance, f"relative error {error}"
    assert np.max(np.abs(lse[:, :, real] - ref_lse[:, :, real])) < 1e-3
    # Padding text rows attend nothing: output 0, lse -inf.
    assert np.all(out[:, :, ~real] == 0)
    assert np.all(np.isneginf(lse[:, :, ~real]))
    # Hole rows in tile order too.
    holes = plan.sequence_length - plan.raster_length
    if holes:
        hole_rows = np.setdiff1d(np.arange(plan.padded_video_tokens), plan.sequence_index())
        assert len(hole_rows) == holes
        assert np.all(out_tiled[:, :, hole_rows] == 0)
        assert np.all(np.isneginf(lse_tiled[:, :, hole_rows]))


def test_explicit_scale_is_used():
    plan = sta.Plan(canvas=(8, 8), tile=(4, 4), windows=[(1, 1)])
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 1, plan.sequence_length, 8)).astype(np.float32) for _ in range(3))
    out_a, _ = sta.attention(q, k, v, plan, scale=0.9)
    out_b, _ = sta.attention(q, k, v, plan)
    masks = [allowed_mask((8, 8), (4, 4), 0, 0, (1, 1))]
    raster = [plan.untile(x, dim=2) for x in (q, k, v)]
    ref, _ = reference(*raster, masks, 0.9)
    assert np.linalg.norm(plan.untile(out_a, dim=2) - ref) / np.linalg.norm(ref) < 1e-4
    assert not np.allclose(out_a, out_b)


@pytest.mark.parametrize("layout_dim", [1, 2])
def test_tile_untile_round_trip(layout_dim):
    plan = sta.Plan(canvas=(3, 5, 6), tile=(2, 2, 4), text=4, windows=[(1, 1, 1)] * 3)
    rng = np.random.default_rng(3)
    shape = [2, 3, 3, 5]
    shape[layout_dim] = plan.raster_length
    for dtype in (np.float32, np.float16, np.int64, np.uint8):
        x = (rng.standard_normal(shape) * 100).astype(dtype)
        tiled = plan.tile(x, dim=layout_dim)
        assert tiled.shape[layout_dim] == plan.sequence_length
        assert np.array_equal(plan.untile(tiled, dim=layout_dim), x)
        # Video token at raster index r sits at sequence_index[r]; text keeps its order; holes are zero.
        moved = np.moveaxis(tiled, layout_dim, 0)
        source = np.moveaxis(x, layout_dim, 0)
        index = plan.sequence_index()
        assert np.array_equal(moved[index], source[:plan.video_tokens])
        assert np.array_equal(moved[plan.padded_video_tokens:], source[plan.video_tokens:])
        holes = np.setdiff1d(np.arange(plan.padded_video_tokens), index)
        assert len(holes) == plan.padded_video_tokens - plan.video_tokens > 0
        assert np.all(moved[holes] == 0)


def test_sequence_index_is_the_tile_order():
    canvas, tile = (3, 5, 6), (2, 2, 4)
    plan = sta.Plan(canvas=canvas, tile=tile, windows=[(1, 1, 1)])
    grid = [-(-c // t) for c, t in zip(canvas, tile)]
    index = plan.sequence_index()
    for raster, (t, h, w) in enumerate(itertools.product(*[range(c) for c in canvas])):
        tile_index = ((t // tile[0]) * grid[1] + h // tile[1]) * grid[2] + w // tile[2]
        offset = ((t % tile[0]) * tile[1] + h % tile[1]) * tile[2] + w % tile[2]
        assert index[raster] == tile_index * 16 + offset


def test_plan_sizes():
    plan = sta.Plan(canvas=(30, 48, 80), tile=(6, 8, 8), text=256, windows=(3, 3, 3), heads=24)
    assert plan.heads == 24
    assert plan.sequence_length == 115456
    assert plan.raster_length == 115456
    assert abs(plan.video_sparsity - (1 - 27 / 300)) < 1e-12  # 27 of the 5×6×10 tiles per query tile
    padded = sta.Plan(canvas=(21, 45, 80), tile=(6, 8, 8), windows=[(3, 3, 3)])
    assert padded.padded_video_tokens == 24 * 48 * 80
    assert padded.video_tokens == 21 * 45 * 80


def test_errors_are_reported_not_crashes():
    with pytest.raises(sta.STAError, match="even"):
        sta.Plan(canvas=(24, 24), tile=(4, 4), windows=[(2, 1)])
    with pytest.raises(sta.STAError, match="tile axis 0"):
        sta.Plan(canvas=(4, 4), tile=(8, 4), windows=[(1, 1)])
    with pytest.raises(ValueError, match="axes"):
        sta.Plan(canvas=(4, 4), tile=(4,), windows=[(1, 1)])
    plan = sta.Plan(canvas=(8, 8), tile=(4, 4), text=2, windows=[(1, 1)])
    x = np.zeros((1, 1, plan.sequence_length + 1, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="sequence length"):
        sta.attention(x, x, x, plan)
    raster = np.zeros((1, 1, plan.raster_length, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        plan.tile(raster[:, :, :-1], dim=2)
    good = np.zeros((1, 1, plan.sequence_length, 8), dtype=np.float64)
    with pytest.raises(TypeError, match="float64"):
        sta.attention(good, good, good, plan)
    two_heads = np.zeros((1, 2, plan.sequence_length, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="heads"):
        sta.attention(two_heads, two_heads, two_heads, plan)
    plan.close()
    with pytest.raises(ValueError, match="closed"):
        plan.sequence_index()
