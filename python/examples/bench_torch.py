#!/usr/bin/env python3
"""STA from PyTorch on a CUDA GPU: kernel timings, a correctness spot check, and an end-to-end attention
block of HunyuanVideo's shape against the same block with dense cuDNN attention.

    python3 python/examples/bench_torch.py --library /path/to/libsta_c.so

Needs torch with CUDA and the library built by `swift build -c release --static-swift-stdlib --product
sta_c` (no Swift toolchain needed at run time). NVRTC is taken from PyTorch's nvidia wheels when the
system has none (or from STA_NVRTC_PATH). Exit status: 0 when every check passed, 1 when a check failed,
2 when the set-up is missing (no torch, no GPU, no library).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the python/ folder holding the sta package

HUNYUAN = dict(batch=1, heads=24, head_dim=128, canvas=(30, 48, 80), tile=(6, 8, 8), text=256)
MIXED = [(5, 3, 3)] * 10 + [(1, 6, 10)] * 8 + [(3, 3, 5)] * 3 + [(5, 1, 10)] * 2 + [(5, 6, 1)] * 1
WINDOWS = {"3x3x3": [(3, 3, 3)] * 24, "mixed": MIXED}


def fail_setup(message: str) -> None:
    print(f"bench_torch: {message}", file=sys.stderr)
    sys.exit(2)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", help="path to libsta_c.so (default: $STA_LIBRARY, then the usual places)")
    parser.add_argument("--kernel", default="auto", choices=["auto", "portable", "hopper"])
    parser.add_argument("--windows", default="3x3x3,mixed", help="comma-separated: 3x3x3, mixed")
    parser.add_argument("--iterations", type=int, default=20, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--check-rows", type=int, default=6, help="query rows per checked head")
    parser.add_argument("--skip-block", action="store_true", help="time only the attention kernels")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    return parser.parse_args()


def cuda_time(torch, function, iterations: int, warmup: int) -> float:
    """Median milliseconds of `function()` on the current stream, timed with CUDA events."""
    for _ in range(warmup):
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def allowed_keys(torch, plan, windows, head: int, query: int, key_tile_coordinates, key_is_real, text_start):
    """Boolean [S] mask of the keys that tile-order query `query` of `head` attends (spec §2), computed
    independently of the library from the plan's geometry."""
    s = plan.sequence_length
    valid_text_end = text_start + plan.text_valid
    keys = torch.arange(s, device=key_is_real.device)
    valid_text = (keys >= text_start) & (keys < valid_text_end)
    if query >= text_start:  # text query: every real video key and every valid text key
        return key_is_real | valid_text
    tile_volume = math.prod(plan.tile_shape)
    grid = [-(-c // t) for c, t in zip(plan.canvas, plan.tile_shape)]
    tile_index = query // tile_volume
    coordinates = []
    for extent in reversed(grid):
        coordinates.append(tile_index % extent)
        tile_index //= extent
    coordinates.reverse()
    inside = key_is_real.clone()
    for axis, (q, n, k) in enumerate(zip(coordinates, grid, windows[head])):
        if k >= n:
            continue
        r = k // 2
        centre = min(max(q, r), n - 1 - r)
        inside &= (key_tile_coordinates[:, axis] - centre).abs() <= r
    return inside | valid_text


def key_geometry(torch, plan, device):
    """Tile coordinates [S, rank] of every sequence position and whether it is a real video token."""
    tile_volume = math.prod(plan.tile_shape)
    grid = [-(-c // t) for c, t in zip(plan.canvas, plan.tile_shape)]
    positions = torch.arange(plan.sequence_length, device=device)
    tile_index = positions // tile_volume
    coordinates = []
    for extent in reversed(grid):
        coordinates.append(tile_index % extent)
        tile_index = tile_index // extent
    coordinates = torch.stack(list(reversed(coordinates)), dim=1)
    is_real = torch.zeros(plan.sequence_length, dtype=torch.bool, device=device)
    index = torch.from_numpy(plan.sequence_index().copy()).to(device)
    is_real[index] = True
    return coordinates, is_real


def check_rows(torch, F, sta, plan, windows, q, k, v, out, lse, rows_per_head: int):
    """Compares sampled rows of `out`/`lse` with float32 SDPA under the explicit mask. Returns the worst
    relative error of the output rows and the worst absolute log-sum-exp error."""
    device = q.device
    coordinates, is_real = key_geometry(torch, plan, device)
    text_start = plan.padded_video_tokens
    s = plan.sequence_length
    scale = 1 / math.sqrt(q.shape[-1])
    generator = torch.Generator().manual_seed(0)
    # The first head of every distinct window, plus the last head.
    heads = sorted({windows.index(w) for w in set(windows)} | {plan.heads - 1})
    worst_out, worst_lse = 0.0, 0.0
    for head in heads:
        candidates = [0, text_start - 1, s - 1 if plan.text_valid == plan.text else text_start]
        candidates += torch.randint(0, s, (max(0, rows_per_head - len(candidates)),), generator=generator).tolist()
        rows = [r for r in candidates if is_real[r] or (text_start <= r < text_start + plan.text_valid)]
        mask = torch.stack([allowed_keys(torch, plan, windows, head, r, coordinates, is_real, text_start)
                            for r in rows])  # [n, S]
        q_rows = q[0, head, rows].float()  # [n, D]
        k_head, v_head = k[0, head].float(), v[0, head].float()
        expected = F.scaled_dot_product_attention(
            q_rows[None, None], k_head[None, None], v_head[None, None], attn_mask=mask[None, None], scale=scale)[0, 0]
        scores = (q_rows @ k_head.T) * scale
        expected_lse = torch.logsumexp(scores.masked_fill(~mask, float("-inf")), dim=-1)
        got = out[0, head, rows].float()
        error = ((got - expected).norm() / expected.norm()).item()
        lse_error = (lse[0, head, rows] - expected_lse).abs().max().item()
        if math.isnan(error) or math.isnan(lse_error):
            error, lse_error = float("inf"), float("inf")
        worst_out, worst_lse = max(worst_out, error), max(worst_lse, lse_error)
    return worst_out, worst_lse


def main() -> int:
    arguments = parse_arguments()
    if arguments.library:
        os.environ["STA_LIBRARY"] = os.path.abspath(arguments.library)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        fail_setup("PyTorch is not installed; this script needs torch with CUDA")
    if not torch.cuda.is_available():
        fail_setup("torch.cuda.is_available() is False; run on a machine with an NVIDIA GPU")
    import sta

    try:
        path = sta.library_path()
    except OSError as error:
        fail_setup(str(error))
    dtype = getattr(torch, arguments.dtype)
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference rows stay float32
    device = torch.device("cuda", torch.cuda.current_device())
    properties = torch.cuda.get_device_properties(device)
    print(f"device: {properties.name} (sm_{properties.major}{properties.minor}), torch {torch.__version__}, "
          f"library {path}")

    shape = HUNYUAN
    b, h, d = shape["batch"], shape["heads"], shape["head_dim"]
    names = [n.strip() for n in arguments.windows.split(",") if n.strip()]
    for name in names:
        if name not in WINDOWS:
            fail_setup(f"unknown window set {name!r}; allowed: {', '.join(WINDOWS)}")

    torch.manual_seed(0)
    rows = []  # (what, ms, note)
    failures = []
    plans = {}
    for name in names:
        windows = WINDOWS[name]
        plan = sta.Plan(canvas=shape["canvas"], tile=shape["tile"], text=shape["text"], windows=windows)
        plans[name] = plan
        s = plan.sequence_length
        q, k, v = (torch.randn(b, h, s, d, device=device, dtype=dtype) for _ in range(3))
        started = time.perf_counter()
        try:
            out, lse = sta.attention(q, k, v, plan, kernel=arguments.kernel)
            torch.cuda.synchronize()
        except sta.STAError as error:
            print(f"STA {name}: {error}", file=sys.stderr)
            failures.append(f"STA {name} failed to run")
            continue
        first = (time.perf_counter() - started) * 1000
        error, lse_error = check_rows(torch, F, sta, plan, windows, q, k, v, out, lse, arguments.check_rows)
        tolerance = 1e-2 if dtype == torch.bfloat16 else 3e-3
        ok = error < tolerance and lse_error < 1e-3  # spec §4
        if not ok:
            failures.append(f"STA {name}: sampled rows off (relative error {error:.2e}, lse error {lse_error:.2e})")
        ms = cuda_time(torch, lambda: sta.attention(q, k, v, plan, kernel=arguments.kernel),
                       arguments.iterations, arguments.warmup)
        tflops = plan.effective_flops(b, d) / (ms * 1e-3) / 1e12
        rows.append((f"STA attention {name} ({plan.video_sparsity:.0%} sparse)", ms,
                     f"{tflops:.0f} eff. TFLOP/s; check rel {error:.1e}, lse {lse_error:.1e} "
                     f"{'ok' if ok else 'FAILED'}; first call {first:.0f} ms"))
        del q, k, v, out, lse

    # Dense attention with cuDNN (what the STA rows are compared with).
    from torch.nn.attention import SDPBackend, sdpa_kernel

    s = plans[names[0]].sequence_length if names else 115456
    q, k, v = (torch.randn(b, h, s, d, device=device, dtype=dtype) for _ in range(3))
    dense_backend = None
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION):
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, k, v)
            torch.cuda.synchronize()
            dense_backend = backend
            break
        except RuntimeError as error:
            print(f"note: SDPA backend {backend.name} unavailable: {str(error).splitlines()[0]}")
    if dense_backend is None:
        fail_setup("neither cuDNN nor FlashAttention SDPA runs on this machine")

    def dense():
        with sdpa_kernel([dense_backend]):
            return F.scaled_dot_product_attention(q, k, v)

    dense_ms = cuda_time(torch, dense, arguments.iterations, arguments.warmup)
    rows.insert(0, (f"dense attention ({dense_backend.name})", dense_ms,
                    f"{4 * b * h * s * s * d / (dense_ms * 1e-3) / 1e12:.0f} TFLOP/s"))
    del q, k, v

    block_rows = []
    if not arguments.skip_block:
        hidden = h * d
        qkv_projection = torch.nn.Linear(hidden, 3 * hidden, device=device, dtype=dtype)
        out_projection = torch.nn.Linear(hidden, hidden, device=device, dtype=dtype)
        x = torch.randn(b, s, hidden, device=device, dtype=dtype)

        def split_heads(qkv):  # [B, S, 3·H·D] -> three contiguous [B, H, S, D] (one copy)
            return qkv.unflatten(-1, (3, h, d)).permute(2, 0, 3, 1, 4).contiguous().unbind(0)

        def dense_block():
            with torch.no_grad():
                q, k, v = split_heads(qkv_projection(x))
                with sdpa_kernel([dense_backend]):
                    o = F.scaled_dot_product_attention(q, k, v)
                return out_projection(o.transpose(1, 2).reshape(b, s, hidden))

        def sta_block(plan):
            def run():
                with torch.no_grad():
                    qkv = plan.tile(qkv_projection(x), dim=1)  # raster -> tile order, once for q, k, v
                    q, k, v = split_heads(qkv)
                    o, _ = sta.attention(q, k, v, plan, kernel=arguments.kernel)
                    o = plan.untile(o.transpose(1, 2).reshape(b, plan.sequence_length, hidden), dim=1)
                    return out_projection(o)
            return run

        dense_block_ms = cuda_time(torch, dense_block, arguments.iterations, arguments.warmup)
        block_rows.append(("block: dense attention", dense_block_ms, "1.00x"))
        reference = dense_block()
        for name, plan in plans.items():
            run = sta_block(plan)
            try:
                result = run()
            except sta.STAError as error:
                failures.append(f"STA block {name}: {error}")
                continue
            if result.shape != reference.shape or not torch.isfinite(result).all():
                failures.append(f"STA block {name}: output has shape {tuple(result.shape)} or non-finite values")
            ms = cuda_time(torch, run, arguments.iterations, arguments.warmup)
            block_rows.append((f"block: STA {name}", ms, f"{dense_block_ms / ms:.2f}x"))
        # The permutations alone, to show what keeping activations in tile order would save.
        plan = next(iter(plans.values()), None)
        if plan is not None:
            y = torch.randn(b, s, 3 * hidden, device=device, dtype=dtype)
            tile_ms = cuda_time(torch, lambda: plan.tile(y, dim=1), arguments.iterations, arguments.warmup)
            block_rows.append(("  of which raster->tile of q,k,v", tile_ms, ""))

    print()
    print(f"HunyuanVideo shape: B={b} H={h} S={s} D={d} {arguments.dtype}, canvas {shape['canvas']}, "
          f"tile {shape['tile']}, text {shape['text']}; median of {arguments.iterations}")
    width = max(len(r[0]) for r in rows + block_rows) + 2
    print(f"{'what':<{width}}{'ms':>10}  {'speed-up vs dense':>18}  notes")
    for what, ms, note in rows:
        speedup = "" if what.startswith("dense") else f"{dense_ms / ms:.2f}x"
        print(f"{what:<{width}}{ms:>10.2f}  {speedup:>18}  {note}")
    if block_rows:
        print(f"attention block: Linear {h * d}->{3 * h * d}, raster->tile, attention, tile->raster, "
              f"Linear {h * d}->{h * d}")
        for what, ms, speedup in block_rows:
            print(f"{what:<{width}}{ms:>10.2f}  {speedup:>18}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
