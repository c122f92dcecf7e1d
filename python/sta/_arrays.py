"""What the package needs to know about a numpy array or a torch tensor, without importing torch
unless the caller already uses it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ArrayInfo", "describe", "empty_like_shape", "is_torch"]


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
        dtype = str(x.dtype).replace("torch.", "")
        return ArrayInfo(
            shape=tuple(x.shape), dtype=dtype, itemsize=x.element_size(), pointer=x.data_ptr(),
            is_cuda=x.is_cuda, device_index=x.device.index if x.is_cuda else -1,
            is_contiguous=x.is_contiguous(), contiguous=x.contiguous)
    import numpy as np

    if not isinstance(x, np.ndarray):
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")
    return ArrayInfo(
        shape=tuple(x.shape), dtype=_numpy_dtype_name(x.dtype), itemsize=x.dtype.itemsize,
        pointer=x.ctypes.data, is_cuda=False, device_index=-1, is_contiguous=x.flags.c_contiguous,
        contiguous=lambda: np.ascontiguousarray(x))


def empty_like_shape(x: Any, shape, dtype=None):
    """An uninitialised contiguous array/tensor of ``shape`` with ``x``'s kind, device and (by default)
    dtype."""
    if is_torch(x):
        return x.new_empty(tuple(shape), dtype=dtype)
    import numpy as np

    return np.empty(tuple(shape), dtype=x.dtype if dtype is None else dtype)
