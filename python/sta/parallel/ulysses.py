"""Ulysses context parallelism for sliding tile attention over torch.distributed (NCCL on GPUs, gloo on
the CPU).

Each rank holds its shard of the video tokens (tile order, an equal contiguous range: ``TileSharding``)
for every head. Per attention call:

1. q, k and v each go through one ``all_to_all_single``: rank r sends the heads of rank j to rank j and
   receives its own heads (``head_ranges``) for the tokens of every rank. Concatenated in rank order the
   received shards are the full tile-order video sequence.
2. The text tokens (joint attention, HunyuanVideo) are **replicated** on every rank: each rank takes its
   heads of the text q, k, v locally, no communication, and appends them after the video tokens.
3. STA runs on the rank's heads with a plan built from **the rank's slice of the per-head windows**, so
   head-specialised strategies stay exact.
4. One more ``all_to_all_single`` returns the video output to the ranks that own the tokens, and carries
   each rank's heads of the text output to every rank (the text stream continues replicated).

Four exchanges of B·S·H·D elements in all (q, k, v in, out back), each rank sending (P−1)/P of its
shard. The rank's heads go through steps 1-4 in ``head_chunks`` chunks: every chunk's input exchanges
are started at once (asynchronous), chunk c is attended as soon as its q, k, v have arrived while the
next chunk's are still travelling, and its output travels while the next chunk is attended. With
autograd the differentiable collectives of ``torch.distributed.nn.functional`` run one at a time.
"""

from __future__ import annotations

from typing import Sequence

from .. import _library
from ..attention import attention
from ..plan import Plan
from .sharding import TileSharding, head_ranges
from .timing import StepTimer

__all__ = ["UlyssesAttention"]


def _group_size_and_rank(group, single_process: bool):
    import torch.distributed as dist

    if single_process:
        return 1, 0
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise RuntimeError("a process group was given but torch.distributed is not initialised")
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


class UlyssesAttention:
    """Sliding tile attention over the ranks of ``group`` (None: the default group when torch.distributed
    is initialised, else a single process; ``single_process=True``: this process alone in any case).

        attend = UlyssesAttention(canvas=(30, 48, 80), tile=(6, 8, 8), windows=strategy_of_layer)
        out, text_out = attend(q, k, v, text=(text_q, text_k, text_v), text_valid=valid)

    canvas, tile: the video layout (as for ``sta.Plan``); the world size must split its tile-order tokens
    evenly (``TileSharding``: the error lists the sizes that would). windows: one window per head, for all
    heads of the model; this rank uses ``windows[head_ranges[rank]]``. kernel: as for ``sta.attention``.
    head_chunks: the rank's heads are attended in up to this many chunks (at most the fewest heads a rank
    has), each with its own exchanges, so that communication overlaps attention; 1 turns it off.

    Plans are built once per text length and kept. Works on CUDA tensors (bf16/fp16, D 64 or 128) with
    NCCL and on CPU tensors with gloo; a single process skips the exchanges.
    """

    def __init__(self, canvas: Sequence[int], tile: Sequence[int], windows: Sequence[Sequence[int]], *,
                 group=None, kernel: str = "auto", single_process: bool = False, head_chunks: int = 2):
        self.group = group
        self.world_size, self.rank = _group_size_and_rank(group, single_process)
        self.sharding = TileSharding(tuple(canvas), tuple(tile), self.world_size)
        self.windows = [tuple(int(s) for s in w) for w in windows]
        if not self.windows:
            raise ValueError("windows is empty: give one window per head of the model")
        self.heads = len(self.windows)
        self.head_ranges = head_ranges(self.heads, self.world_size)
        self.local_heads = self.head_ranges[self.rank]
        self.kernel = kernel
        if int(head_chunks) < 1:
            raise ValueError(f"head_chunks is {head_chunks}; it must be at least 1")
        # Chunks of every rank's heads: chunk c of rank j is the c-th contiguous part of j's heads.
        count = 1 if self.world_size == 1 else min(int(head_chunks), min(len(r) for r in self.head_ranges))
        self.chunks = [[None] * self.world_size for _ in range(count)]
        for rank, heads in enumerate(self.head_ranges):
            for chunk, part in enumerate(head_ranges(len(heads), count)):
                self.chunks[chunk][rank] = range(heads.start + part.start, heads.start + part.stop)
        self._plans: dict[tuple, Plan] = {}

    def __repr__(self) -> str:
        return (f"UlyssesAttention(canvas={self.sharding.canvas}, tile={self.sharding.tile}, heads={self.heads}, "
                f"rank {self.rank}/{self.world_size}: heads {self.local_heads.start}..{self.local_heads.stop - 1} "
                f"in {len(self.chunks)} chunk(s), tokens {self.sharding.token_range(self.rank).start}.."
                f"{self.sharding.token_range(self.rank).stop - 1})")

    def plan(self, text: int = 0, chunk: int | None = None) -> Plan:
        """This rank's plan: the windows of its heads (of one chunk of them when ``chunk`` is given), the
        full canvas, ``text`` text tokens."""
        heads = self.local_heads if chunk is None else self.chunks[chunk][self.rank]
        key = (text, heads.start, heads.stop)
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan(self.sharding.canvas, self.sharding.tile, text=text,
                        windows=self.windows[heads.start:heads.stop])
            self._plans[key] = plan
        return plan

    # MARK: call

    def __call__(self, query, key, value, *, text=None, text_valid=None, scale: float | None = None,
                 timer: StepTimer | None = None, joint: bool = False):
        """Attention for this rank's tokens.

        query, key, value: [B, S_local, H, D] (diffusers' layout), S_local = ``sharding.tokens_per_rank``
        tile-order video tokens of this rank (holes included), H = all heads of the model.
        text: None, or (text_q, text_k, text_v), each [B, L, H, D], the same on every rank.
        text_valid: None (all text real), an int, or a [B] integer tensor (on the tensors' device) of
            per-row valid text lengths; the same on every rank.
        scale: None for 1/sqrt(D).
        joint: with text, return one [B, S_local + L, H, D] tensor (this rank's video rows, then the text
            rows) instead of the pair; it costs nothing extra (the last exchange lands in that order).
        Returns out [B, S_local, H, D], and with text also text_out [B, L, H, D] (all heads, the same on
        every rank; views of one tensor). Padding text rows are 0.

        The rank's heads run in ``head_chunks`` chunks: the exchanges of chunk c + 1 travel while chunk c
        is attended, and the output of chunk c travels while chunk c + 1 is. ``timer`` sees the exposed
        part of the exchanges (with their packing) as "all_to_all" and the kernels as "attention".
        """
        import torch

        self._check(query, key, value, text)
        batch, local, heads, head_dim = query.shape
        length = 0 if text is None else text[0].shape[1]
        tokens = self.sharding.padded_tokens
        timer = timer if timer is not None else StepTimer(enabled=False)
        device = query.device
        differentiable = torch.is_grad_enabled() and any(
            t.requires_grad for t in (query, key, value, *(text or ())))
        exchange = "all_to_all" if self.world_size > 1 else "layout"  # one process: the copies only

        # 1. every chunk's q, k, v on their way (their heads, every rank's tokens).
        with timer.measure(exchange, device):
            incoming = [self._send_inputs(chunk, (query, key, value), differentiable)
                        for chunk in range(len(self.chunks))]
        outgoing = []
        for chunk, exchanges in enumerate(incoming):
            mine = self.chunks[chunk][self.rank]
            buffers = [query.new_empty((batch, len(mine), tokens + length, head_dim)) for _ in range(3)]
            with timer.measure(exchange, device):
                self._receive_inputs(exchanges, (query, key, value), buffers, mine)
                # 2. this chunk's heads of the replicated text, after the video.
                if text is not None:
                    for buffer, part in zip(buffers, text):
                        buffer[:, :, tokens:].copy_(part[:, :, mine.start:mine.stop].transpose(1, 2))
            incoming[chunk] = None
            # 3. STA on the chunk's heads, with their windows.
            with timer.measure("attention", device):
                out = _attend(*buffers, self.plan(length, chunk), scale=scale, text_valid=text_valid,
                              kernel=self.kernel)
            del buffers
            # 4. video rows back to their owners, text rows to everyone.
            with timer.measure(exchange, device):
                outgoing.append(self._send_output(chunk, out, local, length, differentiable))
        with timer.measure(exchange, device):
            both = self._assemble(outgoing, batch, local, length, heads, head_dim)
        if text is None:
            return both
        return both if joint else (both[:, :local], both[:, local:])

    def _check(self, query, key, value, text) -> None:
        if query.dim() != 4:
            raise ValueError(f"query has shape {tuple(query.shape)}; expected [B, S_local, H, D]")
        for name, tensor in (("key", key), ("value", value)):
            if tensor.shape != query.shape:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}; query has {tuple(query.shape)}")
        batch, local, heads, head_dim = query.shape
        if heads != self.heads:
            raise ValueError(
                f"the tensors have {heads} heads but the windows name {self.heads}: give one window per head of "
                f"the model (a strategy for a model with {self.heads} heads does not fit this one)")
        if local != self.sharding.tokens_per_rank:
            raise ValueError(
                f"this rank holds {local} tokens; with {self.world_size} rank(s) each holds "
                f"{self.sharding.tokens_per_rank} tile-order video tokens of canvas {self.sharding.canvas} "
                f"(tile {self.sharding.tile}): shard the tile-order "
                f"hidden states with TileSharding.shard")
        if text is not None:
            if len(text) != 3:
                raise ValueError("text must be (text_q, text_k, text_v)")
            for name, tensor in zip(("text_q", "text_k", "text_v"), text):
                if tensor.dim() != 4 or tensor.shape[0] != batch or tensor.shape[2:] != query.shape[2:]:
                    raise ValueError(
                        f"{name} has shape {tuple(tensor.shape)}; expected [B={batch}, L, H={heads}, D={head_dim}]")
            if len({t.shape[1] for t in text}) != 1:
                raise ValueError("text_q, text_k and text_v must have the same number of tokens")

    # MARK: exchanges

    def _all_to_all(self, receive, send, out_splits, in_splits, differentiable: bool):
        """-> (work or None, send, receive): asynchronous without autograd, differentiable with it."""
        import torch.distributed as dist

        if differentiable:
            import torch.distributed.nn.functional as functional

            receive = functional.all_to_all_single(receive, send, out_splits, in_splits, group=self.group)
            return None, send, receive
        work = dist.all_to_all_single(receive, send, out_splits, in_splits, group=self.group, async_op=True)
        return work, send, receive  # send stays referenced until the exchange is waited on

    def _send_inputs(self, chunk: int, tensors, differentiable: bool):
        """Packs [B, S_local, H, D] as [heads of chunk c of rank 0, of rank 1, ..., S_local, B, D] and
        starts the exchange of each of q, k, v. One process: nothing to send."""
        if self.world_size == 1:
            return None
        parts = self.chunks[chunk]
        mine = parts[self.rank]
        batch, local, _, head_dim = tensors[0].shape
        result = []
        for x in tensors:
            send = x.new_empty((sum(len(p) for p in parts), local, batch, head_dim))
            offset = 0
            for part in parts:
                send[offset:offset + len(part)].copy_(x[:, :, part.start:part.stop].permute(2, 1, 0, 3))
                offset += len(part)
            receive = x.new_empty((self.world_size * len(mine), local, batch, head_dim))
            result.append(self._all_to_all(receive, send, [len(mine)] * self.world_size,
                                           [len(p) for p in parts], differentiable))
        return result

    def _receive_inputs(self, exchanges, tensors, buffers, mine) -> None:
        """buffers[:, :, :S] = [B, h_chunk, S, D]: every rank's tokens of this chunk's heads, in rank order
        (which is tile order)."""
        world = self.world_size
        local = tensors[0].shape[1]
        targets = [b[:, :, :self.sharding.padded_tokens].unflatten(2, (world, local)) for b in buffers]
        if exchanges is None:  # one process
            for x, target in zip(tensors, targets):
                target.copy_(x[:, :, mine.start:mine.stop].transpose(1, 2).unsqueeze(2))
            return
        batch, head_dim = tensors[0].shape[0], tensors[0].shape[3]
        for (work, _, receive), target in zip(exchanges, targets):
            if work is not None:
                work.wait()
            # [P, h, S_local, B, D] -> [B, h, P, S_local, D]
            target.copy_(receive.view(world, len(mine), local, batch, head_dim).permute(3, 1, 0, 2, 4))

    def _send_output(self, chunk: int, out, local: int, length: int, differentiable: bool):
        """Starts the exchange of one chunk's output [B, h_chunk, S + L, D]: to each rank its tokens, then
        this chunk's text rows. One process: the output itself."""
        if self.world_size == 1:
            return out
        world, parts = self.world_size, self.chunks[chunk]
        mine = parts[self.rank]
        batch, _, _, head_dim = out.shape
        tokens = self.sharding.padded_tokens
        send = out.new_empty((world, len(mine), local + length, batch, head_dim))
        send[:, :, :local].copy_(out[:, :, :tokens].unflatten(2, (world, local)).permute(2, 1, 3, 0, 4))
        if length:
            send[:, :, local:].copy_(
                out[:, :, tokens:].permute(1, 2, 0, 3).unsqueeze(0).expand(world, -1, -1, -1, -1))
        send = send.view(world * len(mine), local + length, batch, head_dim)
        receive = out.new_empty((sum(len(p) for p in parts), local + length, batch, head_dim))
        return self._all_to_all(receive, send, [len(p) for p in parts], [len(mine)] * world, differentiable)

    def _assemble(self, outgoing, batch, local, length, heads, head_dim):
        """-> [B, S_local + L, H, D]: every chunk's received heads in head order (contiguous; one process:
        a view of the output)."""
        if self.world_size == 1:
            return outgoing[0].transpose(1, 2)
        result = outgoing[0][2].new_empty((batch, local + length, heads, head_dim))
        for chunk, (work, _, receive) in enumerate(outgoing):
            if work is not None:
                work.wait()
            offset = 0
            for part in self.chunks[chunk]:
                result[:, :, part.start:part.stop].copy_(receive[offset:offset + len(part)].permute(2, 1, 0, 3))
                offset += len(part)
        return result


def _attend(q, k, v, plan, *, scale, text_valid, kernel):
    """sta.attention on CPU or CUDA with per-row text lengths; returns the output only."""
    kwargs = {"scale": scale}
    if q.is_cuda:
        kwargs["kernel"] = kernel
    if text_valid is None or _library.supports("text_valid"):
        if text_valid is not None:
            kwargs["text_valid"] = text_valid
        return attention(q, k, v, plan, **kwargs)[0]
    # A library of C interface 1 has no per-call lengths: one call per distinct length (one host read).
    import torch

    lengths = [int(text_valid)] * q.shape[0] if isinstance(text_valid, int) else text_valid.tolist()
    out = torch.empty_like(q)
    cache = plan.__dict__.setdefault("_by_text_valid", {})
    for length in sorted(set(lengths)):
        if length not in cache:
            cache[length] = Plan(plan.canvas, plan.tile_shape, text=plan.text, text_valid=length,
                                 windows=plan.windows)
        index = torch.tensor([b for b, value in enumerate(lengths) if value == length], device=q.device)
        part = attention(q.index_select(0, index), k.index_select(0, index), v.index_select(0, index),
                         cache[length], **kwargs)[0]
        out.index_copy_(0, index, part)
    return out
