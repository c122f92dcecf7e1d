"""Locating and loading libsta_c.so, and the ctypes signatures of its functions (see sta.h).

Both C interface versions load: version 2 (per-row text lengths, the backward pass, sta_kernel_choice,
sta_version) and version 1 (forward only). ``supports(feature)`` says what the loaded library offers.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading
import warnings

from ._version import __version__

__all__ = ["STAError", "library", "library_path", "interface_version", "library_version", "supports", "check",
           "error_buffer"]

STA_OK = 0
STATUS_NAMES = {
    1: "invalid argument",
    2: "geometry",
    3: "invalid handle",
    4: "CPU kernel",
    5: "CUDA",
}
DTYPE_CODES = {"float32": 0, "float16": 1, "bfloat16": 2}
INTERFACE_VERSIONS = (1, 2)
# What each interface version adds; ``supports`` answers from the loaded library.
FEATURES = {
    1: frozenset({"forward"}),
    2: frozenset({"forward", "text_valid", "backward", "kernel_choice", "version"}),
}
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


def _candidates() -> list[tuple[str, str]]:
    """Where the library is looked for, in order, with where each candidate comes from: the copy bundled
    in this package (an installed wheel), $STA_LIBRARY (a file or a folder), the SwiftPM build folders of
    the repository this package sits in (release first)."""
    package = os.path.dirname(os.path.abspath(__file__))
    repository = os.path.dirname(os.path.dirname(package))
    result = [(os.path.join(package, "libsta_c.so"), "bundled")]
    override = os.environ.get("STA_LIBRARY")
    if override:
        override = os.path.abspath(os.path.expanduser(override))
        if os.path.isdir(override):
            override = os.path.join(override, "libsta_c.so")
        result.append((override, "$STA_LIBRARY"))
    result.append((os.path.join(os.path.dirname(package), "libsta_c.so"), "python/"))
    for configuration in ("release", "debug"):
        result.append((os.path.join(repository, ".build", configuration, "libsta_c.so"), "build tree"))
    return result


_I64 = ctypes.c_int64
_P_I64 = ctypes.POINTER(ctypes.c_int64)
_ERR = (ctypes.c_char_p, ctypes.c_size_t)

_C = ctypes.c_int32
_VP = ctypes.c_void_p
_U64 = ctypes.c_uint64
_F64 = ctypes.c_double

# Functions of every interface version.
_COMMON = {
    "sta_interface_version": (_C, []),
    "sta_plan_create": (_VP, [_C, _P_I64, _P_I64, _I64, _I64, _I64, _P_I64, *_ERR]),
    "sta_plan_destroy": (_C, [_VP, *_ERR]),
    "sta_plan_sequence_length": (_C, [_VP, _P_I64, *_ERR]),
    "sta_plan_shape": (_C, [_VP] + [_P_I64] * 7 + list(_ERR)),
    "sta_plan_video_sparsity": (_C, [_VP, ctypes.POINTER(_F64), *_ERR]),
    "sta_plan_effective_flops": (_C, [_VP, _I64, _I64, ctypes.POINTER(_F64), *_ERR]),
    "sta_plan_sequence_index": (_C, [_VP, _P_I64, _I64, *_ERR]),
    "sta_tile": (_C, [_VP, _VP, _VP, _I64, _I64, *_ERR]),
    "sta_untile": (_C, [_VP, _VP, _VP, _I64, _I64, *_ERR]),
}

# Version 1: the forward pass without per-row text lengths.
_VERSION_1 = {
    "sta_forward_cpu": (_C, [_VP, _C, _I64, _I64, _VP, _VP, _VP, _VP, _VP, _F64, _C, *_ERR]),
    "sta_forward_cuda": (
        _C, [_VP, _C, _I64, _I64, _U64, _U64, _U64, _U64, _U64, _F64, _U64, _C, ctypes.c_char_p, *_ERR]),
}

# Version 2 (CONTRACT §2): text_valid in both forwards, the backward pass, kernel choice, version string.
_VERSION_2 = {
    "sta_forward_cpu": (_C, [_VP, _C, _I64, _I64, _VP, _VP, _VP, _VP, _VP, _F64, _VP, _C, *_ERR]),
    "sta_forward_cuda": (
        _C, [_VP, _C, _I64, _I64, _U64, _U64, _U64, _U64, _U64, _F64, _U64, _U64, _C, ctypes.c_char_p, *_ERR]),
    "sta_backward_cpu": (
        _C, [_VP, _C, _I64, _I64, _VP, _VP, _VP, _VP, _VP, _VP, _VP, _VP, _VP, _F64, _VP, _C, *_ERR]),
    "sta_backward_cuda_workspace_size": (_C, [_VP, _C, _I64, _I64, _C, ctypes.c_char_p, _P_I64, *_ERR]),
    "sta_backward_cuda": (
        _C, [_VP, _C, _I64, _I64, *([_U64] * 9), _F64, _U64, _U64, _I64, _U64, _C, ctypes.c_char_p, *_ERR]),
    "sta_kernel_choice": (_C, [_VP, _C, _I64, _C, _C, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, *_ERR]),
    "sta_version": (ctypes.c_char_p, []),
}

_SIGNATURES = {1: {**_COMMON, **_VERSION_1}, 2: {**_COMMON, **_VERSION_2}}

_interface_version: int | None = None
_features: frozenset = frozenset()
_warned_override = False


def _bind(loaded: ctypes.CDLL, candidate: str) -> int:
    """Sets restype/argtypes of every function of the library's interface version; returns the version."""
    try:
        version_function = loaded.sta_interface_version
    except AttributeError:
        raise OSError(f"{candidate} does not export sta_interface_version; it is not libsta_c.so") from None
    version_function.restype, version_function.argtypes = _C, []
    version = int(version_function())
    if version not in _SIGNATURES:
        raise OSError(
            f"{candidate} implements C interface version {version}; this package (sta {__version__}) reads "
            f"versions {', '.join(map(str, INTERFACE_VERSIONS))}: rebuild the library or update the package")
    for name, (restype, argtypes) in _SIGNATURES[version].items():
        try:
            function = getattr(loaded, name)
        except AttributeError:
            raise OSError(
                f"{candidate} reports C interface version {version} but does not export {name}; rebuild it "
                "(swift build --product sta_c)") from None
        function.restype = restype
        function.argtypes = argtypes
    if version >= 2:
        reported = loaded.sta_version()
        reported = reported.decode("utf-8", errors="replace") if reported else "(none)"
        if reported != __version__:
            raise OSError(
                f"{candidate} is libsta_c {reported}; this Python package is sta {__version__}. Use the "
                "library built from the same checkout (or the wheel's own copy)")
    return version


def library() -> ctypes.CDLL:
    """The loaded library (loaded on first use). Raises OSError listing every path tried."""
    global _library, _path, _interface_version, _features, _warned_override
    loaded_now = _library
    if loaded_now is not None:
        return loaded_now
    with _lock:
        if _library is not None:
            return _library
        tried = []
        for candidate, origin in _candidates():
            if not os.path.exists(candidate):
                tried.append(f"{candidate} ({origin}, absent)")
                continue
            try:
                loaded = ctypes.CDLL(candidate)
            except OSError as error:
                tried.append(f"{candidate} ({origin}: {error})")
                continue
            version = _bind(loaded, candidate)
            override = os.environ.get("STA_LIBRARY")
            if origin == "bundled" and override and not _warned_override:
                _warned_override = True
                warnings.warn(
                    f"sta: using the library bundled with the package ({candidate}); STA_LIBRARY={override} "
                    "is only read when the package has no bundled copy", stacklevel=3)
            features = FEATURES[version]
            if "text_valid" in features and not _accepts_text_valid(loaded):
                features = features - {"text_valid"}
            _library, _path = loaded, candidate
            _interface_version, _features = version, features
            return loaded
        raise OSError(
            "libsta_c.so was not found. Install the wheel (pip install sliding-tile-attention), or build it "
            "with `swift build -c release --product sta_c` (--static-swift-stdlib for a copy that runs without "
            "a Swift toolchain) and set STA_LIBRARY to its path. Tried: " + "; ".join(tried))


def _accepts_text_valid(loaded: ctypes.CDLL) -> bool:
    """Whether a version-2 library runs a forward with per-row text lengths. A build whose kernels do not
    read them yet rejects any text_valid; one CPU call on a two-token plan tells (microseconds)."""
    buffer = error_buffer()
    one = (ctypes.c_int64 * 1)(1)
    plan = loaded.sta_plan_create(1, one, one, 1, -1, 1, one, buffer, ctypes.sizeof(buffer))
    if not plan:
        return False
    try:
        values = (ctypes.c_float * 2)(1.0, 1.0)
        out = (ctypes.c_float * 2)()
        lse = (ctypes.c_float * 2)()
        lengths = (ctypes.c_int32 * 1)(0)
        status = loaded.sta_forward_cpu(plan, DTYPE_CODES["float32"], 1, 1, values, values, values, out, lse, 0.0,
                                        lengths, 1, buffer, ctypes.sizeof(buffer))
        return status == STA_OK
    finally:
        loaded.sta_plan_destroy(plan, None, 0)


def interface_version() -> int:
    """The C interface version of the loaded library (loading it if needed): 1 or 2."""
    library()
    assert _interface_version is not None
    return _interface_version


def supports(feature: str) -> bool:
    """Whether the loaded library offers ``feature``: "forward", "text_valid" (per-row text lengths; a
    version-2 build whose kernels do not read them yet says no), "backward", "kernel_choice" or "version".
    False while no library is loaded: this never loads one, so it is safe inside code that torch.compile
    traces (every caller has loaded it already, through a Plan)."""
    return feature in _features


def library_version() -> str | None:
    """The library's own version string (C interface 2), or None for a version-1 library."""
    lib = library()
    if not supports("version"):
        return None
    return lib.sta_version().decode("utf-8", errors="replace")


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
