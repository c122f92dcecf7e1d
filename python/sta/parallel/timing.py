"""Per-step sums of the time spent in named phases (all-to-all, attention), measured with CUDA events on
the current stream (CPU: wall clock)."""

from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["StepTimer"]


class StepTimer:
    """Collects (start, end) marks per phase name; ``totals()`` returns seconds per phase.

        timer = StepTimer()
        with timer.measure("attention"):
            out = sta.attention(...)
        timer.totals()   # {"attention": 0.0123}: synchronises the device once

    On CUDA a mark is a pair of events recorded on the current stream, so the figure is the stream time
    between them (for a collective: the time the compute stream waited for it, skew between ranks
    included). The cost is two event records per phase, no synchronisation until ``totals``.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._marks: dict[str, list] = {}

    @contextmanager
    def measure(self, phase: str, device=None):
        if not self.enabled:
            yield
            return
        import torch

        if device is not None and torch.device(device).type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._marks.setdefault(phase, []).append(("cuda", start, end))
        else:
            begin = time.perf_counter()
            yield
            self._marks.setdefault(phase, []).append(("cpu", begin, time.perf_counter()))

    def reset(self) -> None:
        self._marks.clear()

    def counts(self) -> dict:
        return {phase: len(marks) for phase, marks in self._marks.items()}

    def totals(self) -> dict:
        """Seconds per phase, summed over every mark since the last ``reset``."""
        result = {}
        synchronised = False
        for phase, marks in self._marks.items():
            total = 0.0
            for kind, start, end in marks:
                if kind == "cuda":
                    if not synchronised:
                        end.synchronize()
                        import torch

                        torch.cuda.synchronize()
                        synchronised = True
                    total += start.elapsed_time(end) / 1000.0
                else:
                    total += end - start
            result[phase] = total
        return result
