"""Context-parallel sliding tile attention over torch.distributed: Ulysses all-to-all with tile-aware
sharding, the integration with diffusers' context-parallel machinery (Wan 2.1, HunyuanVideo), and the
bytes model that compares Ulysses with halo exchange. See docs/PARALLEL.md.

    from sta.parallel import UlyssesAttention, TileSharding
    attend = UlyssesAttention(canvas=(30, 48, 80), tile=(6, 8, 8), windows=[(3, 3, 3)] * 24)
    out, text_out = attend(q_local, k_local, v_local, text=(tq, tk, tv), text_valid=valid)

diffusers is imported only by ``sta.parallel.diffusers``; ``sta.parallel.traffic`` (the bytes model) is pure Python.
"""

from .sharding import TileSharding, head_ranges, valid_world_sizes
from .timing import StepTimer
from .ulysses import UlyssesAttention

__all__ = ["TileSharding", "UlyssesAttention", "StepTimer", "head_ranges", "valid_world_sizes"]
