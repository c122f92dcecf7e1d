"""What the package needs to know about a numpy array or a torch tensor, without importing torch
unless the caller already uses it."""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ArrayInfo", "LIMITS", "checked_int", "describe", "empty_like_shape", "is_torch"]

# The size limits of the library (Swift's STALimits), by the names of the table in docs/CLI.md; a test
# compares the two. Every integer the package passes to the C library is checked against them first, so
# nothing wraps through ctypes.
LIMITS = {
    "sequence_length": 1 << 27,
    "key_tile_entries": 1 << 28,
    "heads": 65_535,
    "batch": 65_535,
    "head_dim": 65_536,
    "tensor_elements": 1 << 34,
    "threads": 4_096,
    "image_side": 8_192,
    "search_steps": 100_000,
    "repetitions": 1_000_000,
}


def checked_int(value: Any, name: str, minimum: int, maximum: int) -> int:
    """``value`` as a Python int when it is an integer (int, numpy integer, 0-d integer tensor; not bool
    or float) in ``minimum..maximum``; otherwise TypeError or ValueError naming ``name`` and the range."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not a bool ({value!r})")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} ({value!r})") from None
    if result < minimum:
        raise ValueError(f"{name} is {result}; it must be at least {minimum}")
    if result > maximum:
        raise ValueError(f"{name} is {result}, which exceeds the limit of {maximum} (see the limits in docs/CLI.md)")
    return result


def is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _numpy_dtype_name(dtype) -> str:
    # numpy has no bfloat16; ml_dtypes (and jax) provide one named "bfloat16".
    return {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}.get(dtype.name, dtype.name)


@dataclass
class ArrayInfo:
    shape: tuple
    dtype: str  # "float32", "float16", "bfloat16", or another name
    itemsize: int
    pointer: int
    is_cuda: bool
    device_index: int
    is_contiguous: bool
    contiguous: Callable[[], Any]


def describe(x: Any) -> ArrayInfo:
    """Shape, dtype name, element size, data address and placement of ``x`` (numpy array or torch tensor)."""
    if is_torch(x):
        if x.numel() and not x.data_ptr():
            # A wrapper subclass without storage of its own (an asynchronous collective's result, which
            # diffusers' context-parallel gather returns): its values, materialised, have an address.
            x = x.clone()
        dtype = str(x.dtype).replace("torch.", "")
        return ArrayInfo(
            shape=tuple(x.shape), dtype=dtype, itemsize=x.element_size(), pointer=x.data_ptr(),
            is_cuda=x.is_cuda, device_index=x.device.index if x.is_cuda else -1,
            is_contiguous=x.is_contiguous(), contiguous=x.contiguous)
    import numpy as np

    if not isinstance(x, np.ndarray):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")
    _check_numpy_dtype(x.dtype)
    return ArrayInfo(
        shape=tuple(x.shape), dtype=_numpy_dtype_name(x.dtype), itemsize=x.dtype.itemsize,
        pointer=x.ctypes.data, is_cuda=False, device_index=-1, is_contiguous=x.flags.c_contiguous,
        contiguous=lambda: np.ascontiguousarray(x))


def _check_numpy_dtype(dtype) -> None:
    """Rejects dtypes whose bytes the library cannot copy or read as numbers: objects (pointers with
    reference counts), structured, string and date types, and non-native byte order."""
    if dtype.hasobject:
        raise TypeError(f"arrays of dtype {dtype} hold Python objects; give a numeric array (float32, float16, ...)")
    if dtype.name != "bfloat16" and (dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufc"):
        raise TypeError(
            f"dtype {dtype} is not supported; give a numeric array (float32, float16, bfloat16, integers)")
    if not dtype.isnative:
        order = "big" if dtype.byteorder == ">" else "little"
        raise ValueError(
            f"the array is {order}-endian ({dtype.str}); this machine is {sys.byteorder}-endian: convert it "
            f"first, e.g. x.astype(x.dtype.newbyteorder('='))")


def empty_like_shape(x: Any, shape, dtype=None):
    """An uninitialised contiguous array/tensor of ``shape`` with ``x``'s kind, device and (by default)
    dtype."""
    if is_torch(x):
        return x.new_empty(tuple(shape), dtype=dtype)
    import numpy as np

    return np.empty(tuple(shape), dtype=x.dtype if dtype is None else dtype)
