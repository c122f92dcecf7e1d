"""Plans cached by window set, and the one call into ``sta.attention``.

A plan is keyed by (canvas, tile, text count, per-head windows): its heads are the number of windows.
The per-row valid text lengths are a call argument (``text_valid``), so one plan — and the kernel
compiled for it — serves every prompt length.
"""

from __future__ import annotations

import inspect
import threading
from typing import Sequence

from ..attention import attention as _sta_attention
from ..plan import Plan

__all__ = ["PlanCache", "attend"]


class PlanCache:
    """``sta.Plan`` objects by (canvas, tile, text, windows), built on first request and kept."""

    def __init__(self):
        self._plans: dict[tuple, Plan] = {}
        self._lock = threading.Lock()

    def get(self, canvas: Sequence[int], tile: Sequence[int], text: int,
            windows: Sequence[Sequence[int]], text_valid: int | None = None) -> Plan:
        key = (tuple(canvas), tuple(tile), int(text), tuple(tuple(w) for w in windows), text_valid)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is None:
                    plan = Plan(key[0], key[1], text=key[2], text_valid=text_valid, windows=[list(w) for w in key[3]])
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


def _takes_text_valid() -> bool:
    try:
        return "text_valid" in inspect.signature(_sta_attention).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


_NATIVE_TEXT_VALID = _takes_text_valid()


def attend(q, k, v, plan: Plan, *, text_valid=None, kernel: str = "auto", cache: PlanCache | None = None):
    """``sta.attention`` on tile-order [B, H, S', D] tensors; returns the output only.

    ``text_valid``: None (every text token real) or an int32 [B] tensor of per-row valid lengths on the
    tensors' device.
    """
    if text_valid is None or _NATIVE_TEXT_VALID:
        extra = {} if text_valid is None else {"text_valid": text_valid}
        result = _sta_attention(q, k, v, plan, kernel=kernel, **extra)
        return result[0] if isinstance(result, tuple) else result
    return _attend_rows_by_valid_length(q, k, v, plan, text_valid, kernel, cache)


def _attend_rows_by_valid_length(q, k, v, plan, text_valid, kernel, cache):
    """For a library without per-row text lengths: one call per distinct valid length (reads the lengths
    on the host, one sync)."""
    import torch

    lengths = [int(x) for x in text_valid.tolist()]
    canvas, tile, text = plan.canvas, plan.tile_shape, plan.text
    windows = plan.windows
    out = torch.empty_like(q)
    if len(set(lengths)) == 1 and lengths[0] == plan.text_valid:
        result = _sta_attention(q, k, v, plan, kernel=kernel)
        return result[0] if isinstance(result, tuple) else result
    for valid in sorted(set(lengths)):
        rows = [b for b, n in enumerate(lengths) if n == valid]
        sub = cache.get(canvas, tile, text, windows, text_valid=valid) if cache else Plan(
            canvas, tile, text=text, text_valid=valid, windows=[list(w) for w in windows])
        index = torch.tensor(rows, device=q.device)
        part = _sta_attention(q.index_select(0, index), k.index_select(0, index), v.index_select(0, index), sub,
                              kernel=kernel)
        out.index_copy_(0, index, part[0] if isinstance(part, tuple) else part)
    return out
