"""Locating and loading libsta_c.so, and the ctypes signatures of its functions (see sta.h)."""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading

__all__ = ["STAError", "library", "library_path", "check", "error_buffer"]

STA_OK = 0
STATUS_NAMES = {
    1: "invalid argument",
    2: "geometry",
    3: "invalid handle",
    4: "CPU kernel",
    5: "CUDA",
}
DTYPE_CODES = {"float32": 0, "float16": 1, "bfloat16": 2}
INTERFACE_VERSION = 2
ERROR_LENGTH = 2048


class STAError(RuntimeError):
    """A call into libsta_c failed; ``status`` is the STA_ERROR_* code, the message says why."""

    def __init__(self, status: int, message: str, function: str):
        self.status = status
        self.function = function
        kind = STATUS_NAMES.get(status, f"status {status}")
        super().__init__(f"{function}: {message} [{kind}]")


_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_path: str | None = None


def _candidates() -> list[str]:
    """Where the library is looked for, in order: $STA_LIBRARY, next to this package, the SwiftPM build
    folders of the repository this package sits in (release first)."""
    package = os.path.dirname(os.path.abspath(__file__))
    repository = os.path.dirname(os.path.dirname(package))
    result = []
    override = os.environ.get("STA_LIBRARY")
    if override:
        override = os.path.abspath(os.path.expanduser(override))
        if os.path.isdir(override):
            override = os.path.join(override, "libsta_c.so")
        return [override]
    result.append(os.path.join(package, "libsta_c.so"))
    result.append(os.path.join(os.path.dirname(package), "libsta_c.so"))
    for configuration in ("release", "debug"):
        result.append(os.path.join(repository, ".build", configuration, "libsta_c.so"))
    return result


_I64 = ctypes.c_int64
_P_I64 = ctypes.POINTER(ctypes.c_int64)
_ERR = (ctypes.c_char_p, ctypes.c_size_t)

_SIGNATURES = {
    "sta_interface_version": (ctypes.c_int32, []),
    "sta_plan_create": (
        ctypes.c_void_p,
        [ctypes.c_int32, _P_I64, _P_I64, _I64, _I64, _I64, _P_I64, *_ERR],
    ),
    "sta_plan_destroy": (ctypes.c_int32, [ctypes.c_void_p, *_ERR]),
    "sta_plan_sequence_length": (ctypes.c_int32, [ctypes.c_void_p, _P_I64, *_ERR]),
    "sta_plan_shape": (ctypes.c_int32, [ctypes.c_void_p] + [_P_I64] * 7 + list(_ERR)),
    "sta_plan_video_sparsity": (ctypes.c_int32, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), *_ERR]),
    "sta_plan_effective_flops": (
        ctypes.c_int32,
        [ctypes.c_void_p, _I64, _I64, ctypes.POINTER(ctypes.c_double), *_ERR],
    ),
    "sta_plan_sequence_index": (ctypes.c_int32, [ctypes.c_void_p, _P_I64, _I64, *_ERR]),
    "sta_tile": (ctypes.c_int32, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, _I64, _I64, *_ERR]),
    "sta_untile": (ctypes.c_int32, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, _I64, _I64, *_ERR]),
    "sta_forward_cpu": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, _I64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_void_p, ctypes.c_int32, *_ERR],
    ),
    "sta_forward_cuda": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, _I64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_uint64, ctypes.c_double, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int32,
         ctypes.c_char_p, *_ERR],
    ),
    "sta_backward_cpu": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, _I64, *([ctypes.c_void_p] * 9), ctypes.c_double, ctypes.c_void_p,
         ctypes.c_int32, *_ERR],
    ),
    "sta_backward_cuda_workspace_size": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, _I64, ctypes.c_int32, ctypes.c_char_p, _P_I64, *_ERR],
    ),
    "sta_backward_cuda": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, _I64, *([ctypes.c_uint64] * 9), ctypes.c_double, ctypes.c_uint64,
         ctypes.c_uint64, _I64, ctypes.c_uint64, ctypes.c_int32, ctypes.c_char_p, *_ERR],
    ),
    "sta_kernel_choice": (
        ctypes.c_int32,
        [ctypes.c_void_p, ctypes.c_int32, _I64, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_size_t, *_ERR],
    ),
    "sta_version": (ctypes.c_char_p, []),
}


def library() -> ctypes.CDLL:
    """The loaded library (loaded on first use). Raises OSError listing every path tried."""
    global _library, _path
    with _lock:
        if _library is not None:
            return _library
        tried = []
        for candidate in _candidates():
            if not os.path.exists(candidate):
                tried.append(f"{candidate} (absent)")
                continue
            try:
                loaded = ctypes.CDLL(candidate)
            except OSError as error:
                tried.append(f"{candidate} ({error})")
                continue
            for name, (restype, argtypes) in _SIGNATURES.items():
                try:
                    function = getattr(loaded, name)
                except AttributeError:
                    raise OSError(f"{candidate} does not export {name}; rebuild it (swift build --product sta_c)")
                function.restype = restype
                function.argtypes = argtypes
            version = loaded.sta_interface_version()
            if version != INTERFACE_VERSION:
                raise OSError(
                    f"{candidate} implements C interface version {version}; this package needs "
                    f"{INTERFACE_VERSION}: rebuild the library or update the package")
            _library, _path = loaded, candidate
            return loaded
        raise OSError(
            "libsta_c.so was not found. Build it with `swift build -c release --product sta_c` "
            "(or --static-swift-stdlib for a copy that runs without a Swift toolchain) and set STA_LIBRARY "
            "to its path. Tried: " + "; ".join(tried))


def library_path() -> str:
    """The path the library was loaded from (loading it if needed)."""
    library()
    assert _path is not None
    return _path


def error_buffer() -> ctypes.Array:
    return ctypes.create_string_buffer(ERROR_LENGTH)


def check(status: int, buffer: ctypes.Array, function: str) -> None:
    """Raises STAError unless ``status`` is STA_OK."""
    if status != STA_OK:
        message = buffer.value.decode("utf-8", errors="replace") or "(no message)"
        raise STAError(status, message, function)


def call(name: str, *arguments) -> None:
    """Calls ``name`` with ``arguments`` plus an error buffer; raises STAError on failure."""
    buffer = error_buffer()
    function = getattr(library(), name)
    status = function(*arguments, buffer, ctypes.sizeof(buffer))
    check(status, buffer, name)


def prepare_nvrtc() -> None:
    """Points STA_NVRTC_PATH at the NVRTC of pip's nvidia wheels on sys.path (the one PyTorch ships),
    unless it is set already. The library finds NVRTC on its own in the usual places; this covers
    virtual environments and user site folders it does not search."""
    if os.environ.get("STA_NVRTC_PATH"):
        return
    for entry in sys.path:
        for pattern in ("nvidia/cu13/lib/libnvrtc.so.*", "nvidia/cuda_nvrtc/lib/libnvrtc.so.*"):
            matches = sorted(
                (m for m in glob.glob(os.path.join(entry, pattern)) if "builtins" not in os.path.basename(m)),
                reverse=True)
            if matches:
                os.environ["STA_NVRTC_PATH"] = matches[0]
                return
