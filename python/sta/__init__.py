"""Sliding Tile Attention for PyTorch and numpy, over the SlidingTileAttention C library (libsta_c.so).

    import sta
    plan = sta.Plan(canvas=(30, 48, 80), tile=(6, 8, 8), text=256, windows=[(3, 3, 3)] * 24)
    q_t, k_t, v_t = (plan.tile(x, dim=2) for x in (q, k, v))   # [B, H, S_raster, D] -> tile order
    out_t, lse = sta.attention(q_t, k_t, v_t, plan)            # CUDA bf16/fp16 or CPU f32/f16/bf16
    out = plan.untile(out_t, dim=2)

Torch tensors run through the custom operators ``torch.ops.sta.attention_forward`` and
``torch.ops.sta.attention_backward`` (module ``sta.ops``, registered when this package is imported with
torch installed): gradients flow, and ``torch.compile(fullgraph=True)`` traces the call.

The library is the copy bundled in the installed wheel, else $STA_LIBRARY, else python/libsta_c.so, else
the repository's .build/release or .build/debug folder. torch is optional: numpy arrays work on the CPU.
"""

import importlib.util as _importlib_util

from ._library import STAError, interface_version, library, library_path, library_version, supports
from ._version import __version__
from .attention import attention, kernel_choice
from .plan import Plan

__all__ = [
    "Plan", "attention", "kernel_choice", "STAError", "library", "library_path", "library_version",
    "interface_version", "supports", "__version__",
]

# The custom operators must exist before torch.compile traces a call, so they are registered here rather
# than on first use. Without torch (numpy only) this is skipped.
if _importlib_util.find_spec("torch") is not None:
    try:
        from . import ops  # noqa: E402,F401
    except ImportError as _error:  # a torch that does not import: numpy use keeps working
        import warnings as _warnings

        _warnings.warn(f"sta: the torch operators are unavailable ({_error}); numpy arrays still work")
