"""Sliding Tile Attention for PyTorch and numpy, over the SlidingTileAttention C library (libsta_c.so).

    import sta
    plan = sta.Plan(canvas=(30, 48, 80), tile=(6, 8, 8), text=256, windows=[(3, 3, 3)] * 24)
    q_t, k_t, v_t = (plan.tile(x, dim=2) for x in (q, k, v))   # [B, H, S_raster, D] -> tile order
    out_t, lse = sta.attention(q_t, k_t, v_t, plan)            # CUDA bf16/fp16 or CPU f32/f16/bf16
    out = plan.untile(out_t, dim=2)

The library is found through $STA_LIBRARY, else next to this package, else the repository's
.build/release or .build/debug folder. torch is optional: numpy arrays work on the CPU.
"""

from ._library import STAError, library, library_path
from .attention import attention
from .plan import Plan

__all__ = ["Plan", "attention", "STAError", "library", "library_path"]
__version__ = "0.1.0"
