"""Argument checks of the Python package (numpy only, no torch and no library needed): unsupported
dtypes and byte orders are rejected, and every integer is range-checked before ctypes could wrap it."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sta import _arrays  # noqa: E402
from sta._arrays import LIMITS, checked_int, describe  # noqa: E402
from sta.plan import Plan  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_limits_match_the_documented_table():
    """docs/CLI.md's table is also checked against Swift's STALimits (LimitsDocumentationTests)."""
    with open(os.path.join(ROOT, "docs", "CLI.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("## Limits"):]
    documented = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| (\w+) \| (\d+) \|", section, re.M)}
    assert documented == LIMITS


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">i4", ">f8"])
def test_big_endian_arrays_are_rejected(dtype):
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    with pytest.raises(ValueError, match="big-endian"):
        describe(x)


def test_native_and_single_byte_arrays_are_accepted():
    for dtype in ["<f4" if sys.byteorder == "little" else ">f4", "=f2", "|u1", "|i1", "bool", "int64"]:
        info = describe(np.zeros((2, 2), dtype=dtype))
        assert info.shape == (2, 2)


@pytest.mark.parametrize("array", [
    np.array([object(), object()], dtype=object),
    np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]),
    np.array(["ab", "cd"]),
    np.array([b"ab", b"cd"]),
    np.zeros(2, dtype="datetime64[s]"),
    np.zeros(2, dtype="V4"),
])
def test_unsupported_dtypes_are_rejected(array):
    with pytest.raises(TypeError, match="dtype"):
        describe(array)


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), (0, ValueError), (1 << 64, ValueError), (-(1 << 63), ValueError), (2.0, TypeError),
    (True, TypeError), ("3", TypeError), (None, TypeError),
])
def test_checked_int_rejects_out_of_range_and_non_integers(value, error):
    with pytest.raises(error):
        checked_int(value, "heads", 1, LIMITS["heads"])


def test_checked_int_accepts_numpy_integers():
    assert checked_int(np.int64(7), "heads", 1, 10) == 7
    assert type(checked_int(np.uint16(7), "heads", 1, 10)) is int


def _plan(**overrides):
    arguments = dict(canvas=(8, 8), tile=(4, 4), windows=[(1, 1)])
    arguments.update(overrides)
    return Plan(**arguments)


@pytest.mark.parametrize("overrides, message", [
    (dict(text=4, text_valid=-5), "text_valid is -5"),
    (dict(text=4, text_valid=5), "text_valid is 5"),
    (dict(text=-1), "text is -1"),
    (dict(text=1 << 64), "text is"),
    (dict(canvas=(8, 1 << 64), tile=(4, 4)), "canvas axis 1"),
    (dict(canvas=(8, -8)), "canvas axis 1 is -8"),
    (dict(tile=(4, 0)), "tile axis 1 is 0"),
    (dict(windows=[(1, (1 << 64) + 1)]), "window axis 1"),
    (dict(windows=[(1, 1)], heads=1 << 40), "heads is"),
    (dict(windows=[(1, 1)], heads=0), "heads is 0"),
    (dict(canvas=(8, 8, 8, 8), tile=(4, 4, 4, 4)), "axes"),
])
def test_plan_integers_are_range_checked_before_the_library(overrides, message, monkeypatch):
    # The checks come first: the library is never asked (and need not even be built).
    def no_library():
        raise AssertionError("the library was called with an unchecked argument")

    monkeypatch.setattr("sta._library.library", no_library)
    with pytest.raises(ValueError, match=re.escape(message)):
        _plan(**overrides)


def test_plan_integers_must_be_integers(monkeypatch):
    monkeypatch.setattr("sta._library.library", lambda: (_ for _ in ()).throw(AssertionError("called")))
    with pytest.raises(TypeError, match="integer"):
        _plan(canvas=(8.5, 8))
    with pytest.raises(TypeError, match="integer"):
        _plan(text="4")


def test_the_module_exposes_one_limits_table():
    assert _arrays.LIMITS is LIMITS
    assert set(LIMITS) >= {"sequence_length", "heads", "batch", "head_dim", "threads"}
