"""An attention-processor-style helper for diffusers-like pipelines (HunyuanVideo joint attention).

Expected layout (HunyuanVideo in diffusers, FastVideo): the joint sequence is the video tokens in
**raster order** (frame-major, then row, then column: index = (t * H + h) * W + w over the latent grid
after patchify) followed by the text tokens, of which the first ``text_valid`` are real and the rest
padding:

    query/key/value: [B, heads, video_tokens + text_tokens, head_dim]   (layout="BHSD", after the
                     usual ``.unflatten(2, (heads, -1)).transpose(1, 2)`` and rotary embedding)
                  or [B, video_tokens + text_tokens, heads, head_dim]   (layout="BSHD")

``sta_attention`` permutes the tokens to tile order (inserting zero holes when the canvas is not a
multiple of the tile), runs sliding tile attention, and permutes the output back, so it can replace
``F.scaled_dot_product_attention(q, k, v, attn_mask=...)`` in such a processor. The text padding mask
is expressed by the plan's ``text_valid`` rather than a mask tensor; the outputs of padding text rows are
zero. A batch whose prompts have different valid lengths needs one call per distinct length (split the
batch).

``STAJointAttention`` keeps one plan per valid text length, for pipelines where it changes per prompt.
"""

from __future__ import annotations

from typing import Sequence

from .attention import attention
from .plan import Plan

__all__ = ["sta_attention", "STAJointAttention"]


def _token_dim(layout: str) -> int:
    if layout == "BHSD":
        return 2
    if layout == "BSHD":
        return 1
    raise ValueError(f"layout is {layout!r}; allowed: 'BHSD' ([B, H, S, D]) or 'BSHD' ([B, S, H, D])")


def sta_attention(query, key, value, plan: Plan, *, layout: str = "BHSD", scale: float | None = None,
                  kernel: str = "auto", return_lse: bool = False):
    """Raster-order joint attention through STA: tile, attend, untile.

    Returns the output in ``query``'s layout and raster order (and the log-sum-exp [B, H, S_raster] in
    raster order when ``return_lse``). Holes never appear in the result.
    """
    dim = _token_dim(layout)
    tiled = [plan.tile(t, dim=dim) for t in (query, key, value)]
    if layout == "BSHD":
        tiled = [_swap_heads_and_tokens(t) for t in tiled]
    out, lse = attention(*tiled, plan, scale=scale, kernel=kernel)
    if layout == "BSHD":
        out = _swap_heads_and_tokens(out)
    out = plan.untile(out, dim=dim)
    if return_lse:
        return out, plan.untile(lse, dim=2)
    return out


def _swap_heads_and_tokens(x):
    """[B, S, H, D] <-> [B, H, S, D] (a view; attention makes it contiguous)."""
    if type(x).__module__.startswith("numpy"):
        return x.transpose(0, 2, 1, 3)
    return x.transpose(1, 2)


class STAJointAttention:
    """STA for a fixed canvas, tile, text length and per-head windows; plans are built per valid text
    length on first use and kept.

        attend = STAJointAttention(canvas=(30, 48, 80), tile=(6, 8, 8), text=256,
                                   windows=[(3, 3, 3)] * 24)
        hidden = attend(q, k, v, text_valid=int(attention_mask[0].sum()) - video_tokens)
    """

    def __init__(self, canvas: Sequence[int], tile: Sequence[int], text: int,
                 windows: Sequence[Sequence[int]], layout: str = "BHSD", kernel: str = "auto"):
        _token_dim(layout)
        self.canvas, self.tile, self.text = tuple(canvas), tuple(tile), int(text)
        self.windows = [tuple(w) for w in windows]
        self.layout, self.kernel = layout, kernel
        self._plans: dict[int, Plan] = {}

    def plan(self, text_valid: int | None = None) -> Plan:
        valid = self.text if text_valid is None else int(text_valid)
        plan = self._plans.get(valid)
        if plan is None:
            plan = Plan(self.canvas, self.tile, text=self.text, text_valid=valid, windows=self.windows)
            self._plans[valid] = plan
        return plan

    def __call__(self, query, key, value, text_valid: int | None = None, scale: float | None = None):
        return sta_attention(query, key, value, self.plan(text_valid), layout=self.layout, scale=scale,
                             kernel=self.kernel)
