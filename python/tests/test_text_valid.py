"""Per-row valid text lengths and the [B, S, H, D] layout through the numpy path (no torch needed), the
tile-order mask builder of _masks.py against the raster one, and the argument checks of sta.attention."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import sta  # noqa: E402
from sta import _library  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

import _masks  # noqa: E402
from test_cpu import CASES, allowed_mask  # noqa: E402

needs_text_valid = pytest.mark.skipif(
    not sta.supports("text_valid"), reason="the loaded libsta_c is C interface 1 (no per-row text lengths)")


def small_plan(text=8, text_valid=None):
    # 2 x 3 x 5 canvas in 2 x 2 x 4 tiles: holes on every axis; two heads with different windows.
    return sta.Plan(canvas=(3, 3, 5), tile=(2, 2, 4), text=text, text_valid=text_valid,
                    windows=[(1, 1, 1), (3, 1, 3)])


def inputs(plan, batch=2, head_dim=8, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    shape = (batch, plan.heads, plan.sequence_length, head_dim)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


@pytest.mark.parametrize("canvas,tile,text,text_valid,windows", CASES)
def test_tile_order_mask_is_the_raster_mask_permuted(canvas, tile, text, text_valid, windows):
    plan = sta.Plan(canvas=canvas, tile=tile, text=text, text_valid=text_valid, windows=windows)
    _, real, _ = _masks.tile_order_positions(plan)
    assert np.array_equal(np.flatnonzero(real), np.sort(plan.sequence_index()))
    order = np.concatenate([plan.sequence_index(), np.arange(plan.padded_video_tokens, plan.sequence_length)])
    holes = np.setdiff1d(np.arange(plan.sequence_length), order)
    for head, window in enumerate(windows):
        mask = _masks.tile_order_mask(plan, head, text_valid)
        assert np.array_equal(mask[np.ix_(order, order)], allowed_mask(canvas, tile, text, text_valid, window))
        assert not mask[holes].any() and not mask[:, holes].any()


@needs_text_valid
@pytest.mark.parametrize("rows", [(3, 8), (0, 5), (8, 8)])
@pytest.mark.parametrize("dtype,tolerance", [(np.float32, 1e-4), (np.float16, 3e-3)])
def test_per_row_text_lengths_match_the_float64_reference(rows, dtype, tolerance):
    plan = small_plan()
    q, k, v = inputs(plan, dtype=dtype)
    # Large finite keys and values at each row's padding text: a row that attended one would be far off.
    for x in (k, v):
        for b, valid in enumerate(rows):
            x[b, :, plan.padded_video_tokens + valid:] = 3e4
    out, lse = sta.attention(q, k, v, plan, text_valid=np.array(rows, dtype=np.int32), threads=2)
    mask = _masks.masks(plan, rows)
    expected, expected_lse = _masks.reference_numpy(q, k, v, mask, 1 / np.sqrt(q.shape[-1]))
    attends = mask.any(axis=-1)                                          # [B, H, S]
    got = out.astype(np.float64)[attends]
    assert not np.isnan(got).any()
    assert np.linalg.norm(got - expected[attends]) / np.linalg.norm(expected[attends]) < tolerance
    assert np.max(np.abs(lse[attends] - expected_lse[attends])) < 1e-3
    # Rows that attend nothing (holes, each row's own padding text): exactly 0 and -inf.
    assert np.all(out[~attends] == 0)
    assert np.all(np.isneginf(lse[~attends]))
    # Row 0's padding starts at its own length, not at the plan's.
    assert np.isneginf(lse[0, :, plan.padded_video_tokens + rows[0]:]).all()


@needs_text_valid
def test_an_int_text_valid_equals_a_plan_built_with_it():
    q, k, v = inputs(small_plan())
    out_call, lse_call = sta.attention(q, k, v, small_plan(), text_valid=5)
    out_plan, lse_plan = sta.attention(q, k, v, small_plan(text_valid=5))
    out_rows, _ = sta.attention(q, k, v, small_plan(), text_valid=[5, 5])
    np.testing.assert_allclose(out_call, out_plan, rtol=0, atol=1e-6)
    np.testing.assert_allclose(lse_call, lse_plan, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out_call, out_rows)


def test_layout_bshd_is_bhsd_transposed():
    plan = small_plan(text_valid=6)
    q, k, v = inputs(plan)
    out, lse = sta.attention(q, k, v, plan)
    swapped = [np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v)]
    out_bshd, lse_bshd = sta.attention(*swapped, plan, layout="bshd")
    assert out_bshd.shape == swapped[0].shape
    np.testing.assert_array_equal(out_bshd, out.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(lse_bshd, lse)
    out_upper, _ = sta.attention(*swapped, plan, layout="BSHD")
    np.testing.assert_array_equal(out_upper, out_bshd)


def test_bad_text_valid_is_reported():
    plan = small_plan()
    q, k, v = inputs(plan)
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        sta.attention(q, k, v, plan, text_valid=np.array([1, 2, 3], dtype=np.int32))
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        sta.attention(q, k, v, plan, text_valid=np.array([[1], [2]], dtype=np.int32))
    with pytest.raises(TypeError, match="float64"):
        sta.attention(q, k, v, plan, text_valid=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[9\].*0\.\.\.8"):
        sta.attention(q, k, v, plan, text_valid=np.array([1, 9], dtype=np.int32))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        sta.attention(q, k, v, plan, text_valid=[-1, 2])
    with pytest.raises(ValueError, match=r"text_valid is 9.*0\.\.\.8"):
        sta.attention(q, k, v, plan, text_valid=9)
    with pytest.raises(TypeError, match="text_valid"):
        sta.attention(q, k, v, plan, text_valid=True)


def test_other_bad_arguments_are_reported():
    plan = small_plan()
    q, k, v = inputs(plan)
    with pytest.raises(ValueError, match="layout"):
        sta.attention(q, k, v, plan, layout="bsd")
    with pytest.raises(ValueError, match="kernel"):
        sta.attention(q, k, v, plan, kernel="flash")
    with pytest.raises(ValueError, match="threads"):
        sta.attention(q, k, v, plan, threads=0)
    with pytest.raises(ValueError, match="scale"):
        sta.attention(q, k, v, plan, scale=-1.0)
    with pytest.raises(TypeError, match="sta.Plan"):
        sta.attention(q, k, v, "plan")
    with pytest.raises(ValueError, match="share a dtype"):
        sta.attention(q, k, v.astype(np.float16), plan)
    with pytest.raises(ValueError, match="4 dimensions"):
        sta.attention(q[0], k[0], v[0], plan, layout="bshd")


def test_a_version_1_library_refuses_per_row_lengths(monkeypatch):
    plan = small_plan(text_valid=4)
    q, k, v = inputs(plan)
    monkeypatch.setattr(_library, "_features", _library.FEATURES[1])
    with pytest.raises(RuntimeError, match="C interface 2"):
        sta.attention(q, k, v, plan, text_valid=[3, 8])
    with pytest.raises(RuntimeError, match="C interface 2"):
        sta.attention(q, k, v, plan, text_valid=3)
    # The plan's own length needs nothing new.
    out, _ = sta.attention(q, k, v, plan, text_valid=4)
    assert out.shape == q.shape


def test_version_and_library():
    assert sta.__version__ == "0.3.0"
    assert sta.interface_version() in (1, 2)
    if sta.supports("version"):
        assert sta.library_version() == sta.__version__
    else:
        assert sta.library_version() is None


def test_the_per_row_probe_is_about_text_valid():
    """supports("text_valid") comes from one two-token forward with lengths; the same call without them
    must succeed, so a refusal is about the lengths and not about the probe's shape."""
    if sta.interface_version() < 2:
        pytest.skip("a version-1 library has no text_valid parameter")
    import ctypes

    lib = sta.library()
    buffer = _library.error_buffer()
    one = (ctypes.c_int64 * 1)(1)
    plan = lib.sta_plan_create(1, one, one, 1, -1, 1, one, buffer, ctypes.sizeof(buffer))
    assert plan, buffer.value
    try:
        values = (ctypes.c_float * 2)(1.0, 1.0)
        out, lse = (ctypes.c_float * 2)(), (ctypes.c_float * 2)()
        status = lib.sta_forward_cpu(plan, 0, 1, 1, values, values, values, out, lse, 0.0, None, 1, buffer,
                                     ctypes.sizeof(buffer))
        assert status == 0, buffer.value
        assert list(out) == [1.0, 1.0]                       # one video and one text token, both value 1
        lengths = (ctypes.c_int32 * 1)(0)
        status = lib.sta_forward_cpu(plan, 0, 1, 1, values, values, values, out, lse, 0.0, lengths, 1, buffer,
                                     ctypes.sizeof(buffer))
        if sta.supports("text_valid"):
            assert status == 0, buffer.value
            assert list(out) == [1.0, 0.0] and lse[1] == float("-inf")   # the text token became padding
        else:
            assert status != 0 and b"text_valid" in buffer.value
    finally:
        lib.sta_plan_destroy(plan, None, 0)
