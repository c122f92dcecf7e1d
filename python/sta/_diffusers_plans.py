"""Plans cached by window set, and the one call into ``sta.attention``.

A plan is keyed by (canvas, tile, text count, per-head windows): its heads are the number of windows.
The per-row valid text lengths are a call argument (``text_valid``), so one plan — and the kernel
compiled for it — serves every prompt length.
"""

from __future__ import annotations

import threading
from typing import Sequence

from .attention import attention as _sta_attention
from .plan import Plan

__all__ = ["PlanCache", "attend"]


class PlanCache:
    """``sta.Plan`` objects by (canvas, tile, text, windows), built on first request and kept."""

    def __init__(self):
        self._plans: dict[tuple, Plan] = {}
        self._lock = threading.Lock()

    def get(self, canvas: Sequence[int], tile: Sequence[int], text: int, windows: Sequence[Sequence[int]]) -> Plan:
        key = (tuple(canvas), tuple(tile), int(text), tuple(tuple(w) for w in windows))
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is None:
                    plan = Plan(key[0], key[1], text=key[2], windows=[list(w) for w in key[3]])
                    self._plans[key] = plan
        return plan

    def __len__(self) -> int:
        return len(self._plans)

    def plans(self) -> list[Plan]:
        return list(self._plans.values())

    def clear(self) -> None:
        with self._lock:
            for plan in self._plans.values():
                plan.close()
            self._plans.clear()


def attend(q, k, v, plan: Plan, *, text_valid=None, kernel: str = "auto"):
    """``sta.attention`` on tile-order [B, H, S', D] tensors; returns the output only.

    ``text_valid``: None (every text token real) or an int32 [B] tensor of per-row valid lengths on the
    tensors' device (read by the kernel; no host synchronisation).
    """
    out, _ = _sta_attention(q, k, v, plan, text_valid=text_valid, kernel=kernel)
    return out
