#!/usr/bin/env python3
"""dq, dk, dv of ``sta.attention`` against FlexAttention with the same mask and against float64.

On the GPU (default): HunyuanVideo's attention — B=1, H=24, canvas 30×48×80 in 6×8×8 tiles, 256 text tokens
of which ``--text-valid`` (200) are real, D=128, bf16, window 3×3×3 — in tile order. STA runs forward and
backward through its PyTorch custom op (``sta.attention`` with inputs that require grad: autograd calls
``torch.ops.sta.attention_backward``); FlexAttention runs compiled with a block mask built from the plan
(``flex_sta.py``). Both get the same q, k, v and the same output gradient dO.

Compared (relative errors, spec §4's measure ‖g − ref‖ / ‖ref‖ over the rows compared, beside the largest
and the mean of the per-row errors ‖g_i − ref_i‖ / ‖ref_i‖):
  * each of STA and FlexAttention against a float64 reference computed from q, k, v, dO alone (its own
    forward, lse and Δ = dO · O), on sampled rows: dq on sampled query rows, dk and dv on sampled key rows
    (for a key: every query that attends it). Rows: first, middle and last token of the first, middle and
    last tile of each axis, text rows beside every 64-row boundary, the last valid and first padding text
    rows, and ``--random-rows`` more;
  * STA against FlexAttention on every real row (and their outputs).
STA's gradient rows of holes and padding text must be exactly 0, and every other row finite.

Exit status 1 when STA or FlexAttention is past the spec bound against float64 (bf16 1e-2, fp16 3e-3,
fp32 1e-4), when STA and FlexAttention differ by more than twice it, or when an empty row is not zero.
A JSON report goes to standard output (``--output`` also writes it to a file); a table to standard error.

    python3 python/examples/gradients_vs_flex.py                      # the hunyuan shape, on the GPU
    python3 python/examples/gradients_vs_flex.py --tiny --device cpu  # a small layout on the CPU

On the CPU, FlexAttention has no backward pass: the peer is then the same mask (``flex_sta.dense_mask``)
as an explicit masked softmax under autograd, and FlexAttention's forward output is checked against STA's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import flex_sta  # noqa: E402
import sta  # noqa: E402

BOUNDS = {torch.float32: 1e-4, torch.float16: 3e-3, torch.bfloat16: 1e-2}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def shape_arg(text):
    return tuple(int(x) for x in text.lower().split("x"))


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--canvas", type=shape_arg, default=(30, 48, 80))
    p.add_argument("--tile", type=shape_arg, default=(6, 8, 8))
    p.add_argument("--window", type=shape_arg, default=(3, 3, 3), help="window in tiles, every head")
    p.add_argument("--heads", type=int, default=24)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--text", type=int, default=256)
    p.add_argument("--text-valid", type=int, default=200)
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bfloat16 (float32 with --tiny)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--kernel", default="auto", choices=["auto", "portable", "hopper"], help="STA's CUDA kernel")
    p.add_argument("--random-rows", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true",
                   help="a small layout (canvas 5x6x10, tile 2x2x4: holes on two axes; 24 text, 17 valid; "
                        "per-head windows; D 16; float32) for a CPU run")
    p.add_argument("--output", help="also write the JSON report here")
    a = p.parse_args(argv)
    if a.tiny:
        a.canvas, a.tile, a.heads, a.head_dim, a.text, a.text_valid = (5, 6, 10), (2, 2, 4), 3, 16, 24, 17
        a.windows = [(1, 3, 3), (3, 3, 3), (5, 1, 1)]
    else:
        a.windows = [a.window] * a.heads
    a.dtype = DTYPES[a.dtype or ("float32" if a.tiny else "bfloat16")]
    return a


# MARK: rows


def sampled_rows(plan, count, generator):
    """Tile-order rows to reference: corners, middles and borders of the tile grid, text boundaries and
    padding, and ``count`` random rows; sorted, unique."""
    grid = [-(-c // t) for c, t in zip(plan.canvas, plan.tile_shape)]
    volume = math.prod(plan.tile_shape)
    rows = set()
    picks = [sorted({0, n // 2, n - 1}) for n in grid]
    import itertools

    for coordinate in itertools.product(*picks):
        tile = 0
        for axis, index in enumerate(coordinate):
            tile = tile * grid[axis] + index
        rows.update({tile * volume, tile * volume + volume // 2, tile * volume + volume - 1})
    video = plan.padded_video_tokens
    if plan.text:
        text = {0, plan.text - 1}
        if plan.text_valid:
            text.add(plan.text_valid - 1)
        if plan.text_valid < plan.text:
            text.add(plan.text_valid)
        for boundary in range(64, plan.text, 64):
            text.update({boundary - 1, boundary})
        rows.update(video + t for t in text)
    rows.update(torch.randint(0, plan.sequence_length, (count,), generator=generator).tolist())
    return sorted(rows)


# MARK: the float64 reference


def reference_rows(q, k, v, dout, unit, allowed, windows, scale, query_rows, key_rows):
    """float64 dq on ``query_rows`` and dk, dv on ``key_rows`` ([H, rows, D] each) for batch row 0, from
    q, k, v, dO alone. Every query's lse and Δ = dO · O (needed by the key rows) come from a forward pass
    computed unit by unit over the keys each unit attends (key lists shared by heads of one window)."""
    heads, length, _ = q.shape[1:]
    empty = allowed.shape[-1] - 1
    dq = torch.zeros(heads, len(query_rows), q.shape[-1], dtype=torch.float64, device=q.device)
    dk = torch.zeros(heads, len(key_rows), q.shape[-1], dtype=torch.float64, device=q.device)
    dv = torch.zeros_like(dk)
    query_index = torch.tensor(query_rows, device=q.device)
    key_index = torch.tensor(key_rows, device=q.device)
    members = [torch.nonzero(unit == u).flatten() for u in range(empty)]
    key_lists = {}
    for h in range(heads):
        Q, K, V, G = (x[0, h].double() for x in (q, k, v, dout))
        table = allowed[h]

        # dq: rows of the sampled queries over every key, masked.
        mask = table[unit[query_index][:, None], unit[None, :]]
        scores = torch.where(mask, (Q[query_index] @ K.T) * scale, -math.inf)
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        p = torch.where(mask, torch.exp(scores - torch.where(mask.any(-1, keepdim=True), lse, 0.0)), 0.0)
        out = p @ V
        delta = (G[query_index] * out).sum(-1, keepdim=True)
        dq[h] = scale * (p * (G[query_index] @ V.T - delta)) @ K

        # lse and Δ of every query, unit by unit (a unit's queries share their keys).
        lse_all = torch.full((length,), -math.inf, dtype=torch.float64, device=q.device)
        delta_all = torch.zeros(length, dtype=torch.float64, device=q.device)
        for u in range(empty):
            rows = members[u]
            if rows.numel() == 0:
                continue
            keys = key_lists.get((tuple(windows[h]), u))
            if keys is None:
                keys = key_lists[(tuple(windows[h]), u)] = torch.nonzero(table[u][unit]).flatten()
            s = (Q[rows] @ K[keys].T) * scale
            row_lse = torch.logsumexp(s, dim=-1)
            weights = torch.exp(s - row_lse[:, None])
            lse_all[rows] = row_lse
            delta_all[rows] = (G[rows] * (weights @ V[keys])).sum(-1)

        # dk, dv: every query against the sampled keys, masked.
        mask = table[unit[:, None], unit[key_index][None, :]]
        s = (Q @ K[key_index].T) * scale
        p = torch.where(mask, torch.exp(s - torch.where(torch.isfinite(lse_all), lse_all, 0.0)[:, None]), 0.0)
        dv[h] = p.T @ G
        ds = p * (G @ V[key_index].T - delta_all[:, None])
        dk[h] = scale * ds.T @ Q
    return dq, dk, dv


# MARK: comparisons


def errors(got, want):
    """Spec §4's relative error over all the rows given, and the max and mean of the per-row ones."""
    got, want = got.double(), want.double()
    difference = (got - want).flatten(0, -2)
    reference = want.flatten(0, -2)
    total = (difference.norm() / reference.norm()).item()
    rows = difference.norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-30)
    finite = bool(torch.isfinite(got).all())
    if not finite:
        total = math.inf
    return {"rel": total, "row_max": rows.max().item() if finite else math.inf,
            "row_mean": rows.mean().item() if finite else math.inf}


def main(argv=None) -> int:
    a = parse(argv)
    device = torch.device(a.device)
    generator = torch.Generator().manual_seed(a.seed)
    plan = sta.Plan(canvas=a.canvas, tile=a.tile, text=a.text, text_valid=a.text_valid, windows=a.windows)
    shape = (1, plan.heads, plan.sequence_length, a.head_dim)
    q, k, v, dout = (torch.randn(shape, generator=generator).to(device=device, dtype=a.dtype) for _ in range(4))
    scale = 1 / math.sqrt(a.head_dim)
    unit, allowed = flex_sta.units(plan, device)
    report = {"problem": {"canvas": list(a.canvas), "tile": list(a.tile), "heads": plan.heads,
                          "head_dim": a.head_dim, "text": a.text, "text_valid": a.text_valid,
                          "windows": sorted({tuple(w) for w in a.windows}), "dtype": str(a.dtype).split(".")[-1],
                          "sequence_length": plan.sequence_length, "device": str(device)}}
    print(f"gradients: {plan}, D {a.head_dim}, {a.dtype}, on {device}", file=sys.stderr)

    # STA through the custom op and autograd.
    leaves = [x.detach().requires_grad_(True) for x in (q, k, v)]
    sta_out, _ = sta.attention(*leaves, plan, kernel=a.kernel)
    sta_grads = torch.autograd.grad(sta_out, leaves, dout)
    if device.type == "cuda":
        report["sta_backward_kernel"] = sta.kernel_choice(
            plan, a.dtype, a.head_dim, backward=True, device=device.index or 0, kernel=a.kernel)
    else:
        report["sta_backward_kernel"] = "cpu"

    # The peer: FlexAttention with the same mask (on the CPU: that mask, explicit, under autograd).
    mask = flex_sta.block_mask(plan, device)
    leaves = [x.detach().requires_grad_(True) for x in (q, k, v)]
    if device.type == "cuda":
        peer_out = flex_sta.flex_attention(*leaves, mask, scale=scale)
        report["peer"] = "flex_attention (compiled)"
    else:
        dense = flex_sta.dense_mask(plan, device)
        peer_out = flex_sta.masked_attention(*leaves, dense, scale)
        report["peer"] = "explicit mask, autograd (FlexAttention has no CPU backward)"
        with torch.no_grad():
            flex_out = flex_sta.flex_attention(q, k, v, mask, scale=scale)
        report["flex_forward_vs_sta"] = errors(sta_out.detach()[0], flex_out[0])["rel"]
    peer_grads = torch.autograd.grad(peer_out, leaves, dout)

    # Rows of holes and padding text: STA's gradients there must be exactly zero.
    empty = unit == allowed.shape[-1] - 1
    report["forward_sta_vs_peer"] = errors(sta_out.detach()[0][:, ~empty], peer_out.detach()[0][:, ~empty])
    del peer_out, sta_out
    bad_empty = sum(int((g[0][:, empty] != 0).any(-1).sum()) for g in sta_grads)
    report["empty_rows"] = int(empty.sum()) * plan.heads
    report["bad_empty_rows"] = bad_empty

    rows = sampled_rows(plan, a.random_rows, generator)
    real_rows = [r for r in rows if not empty[r]]
    reference = reference_rows(q, k, v, dout, unit, allowed, a.windows, scale, real_rows, real_rows)
    index = torch.tensor(real_rows, device=device)
    results = {}
    for name, sta_grad, peer_grad, ref in zip(("dq", "dk", "dv"), sta_grads, peer_grads, reference):
        results[name] = {
            "sta_vs_float64": errors(sta_grad[0][:, index], ref),
            "peer_vs_float64": errors(peer_grad[0][:, index], ref),
            "sta_vs_peer": errors(sta_grad[0][:, ~empty], peer_grad[0][:, ~empty]),
        }
    report["sampled_rows"] = len(real_rows)
    report["gradients"] = results
    bound = BOUNDS[a.dtype]
    report["bound"] = bound
    failures = []
    for name, result in results.items():
        for pair, limit in (("sta_vs_float64", bound), ("peer_vs_float64", bound), ("sta_vs_peer", 2 * bound)):
            if not result[pair]["rel"] <= limit:
                failures.append(f"{name} {pair} {result[pair]['rel']:.3g} > {limit:g}")
    if bad_empty:
        failures.append(f"{bad_empty} gradient rows of holes or padding text are not zero")
    if not report["forward_sta_vs_peer"]["rel"] <= 2 * bound:
        failures.append(f"the outputs of STA and the peer differ by {report['forward_sta_vs_peer']['rel']:.3g}")
    if "flex_forward_vs_sta" in report and not report["flex_forward_vs_sta"] <= bound:
        failures.append(f"FlexAttention's forward differs from STA's by {report['flex_forward_vs_sta']:.3g}")
    report["failures"] = failures
    report["passed"] = not failures

    print(f"{'grad':4} {'pair':16} {'rel':>10} {'row max':>10} {'row mean':>10}", file=sys.stderr)
    for name, result in results.items():
        for pair, e in result.items():
            print(f"{name:4} {pair:16} {e['rel']:10.3e} {e['row_max']:10.3e} {e['row_mean']:10.3e}", file=sys.stderr)
    forward = report["forward_sta_vs_peer"]
    print(f"out  sta_vs_peer      {forward['rel']:10.3e} {forward['row_max']:10.3e} {forward['row_mean']:10.3e}",
          file=sys.stderr)
    print(f"sampled real rows {len(real_rows)} per head; empty rows {report['empty_rows']}, not zero {bad_empty}; "
          f"bound {bound:g}: {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}", file=sys.stderr)
    text = json.dumps(report)
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
