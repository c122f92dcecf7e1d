#!/usr/bin/env python3
"""One denoising step of HunyuanVideo (13B) or Wan 2.1 (14B, 720p) with sliding tile attention on N GPUs
(context parallelism: Ulysses over NCCL, tile-aware sharding), random bf16 weights made on the GPU.

    torchrun --nproc-per-node 1 python/examples/parallel_step.py --model hunyuan --json one.json
    torchrun --nproc-per-node 2 python/examples/parallel_step.py --model hunyuan --json two.json \\
        --baseline one.json
    torchrun --nproc-per-node 2 python/examples/parallel_step.py --model wan --tiny --device cpu   # gloo

Prints per timed step the step time, and inside it the all-to-all time (the exchanges with their packing,
CUDA events on the compute stream, summed over the step's attention calls) and the STA time; rank 0
writes JSON rows (model, attention, window, gpus, step_s, speedup, ...) to --json (appended when the file
exists). --baseline FILE reads the one-GPU row of the same model and window from an earlier run: speedup
= its step_s / this step_s, and the two outputs are compared (relative L2 error; the one-GPU run saves
its output next to its JSON file). --check-attention first compares one Ulysses attention call (per-head
windows, batch 2 with padded text) against the same call on one rank.

Environment: NCCL_NVLS_ENABLE=0 and TORCH_SYMM_MEM_DISABLE_MULTICAST=1 are always set here (NVLink
multicast and symmetric memory stay off). The model classes come from diffusers (0.42); the library from
$STA_LIBRARY or the repository's build folders.
"""

from __future__ import annotations

import os

# Before torch or NCCL read them: no NVLink SHARP / multicast, no symmetric-memory multicast.
for _name, _value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")):
    if os.environ.get(_name, _value) != _value:
        print(f"parallel_step: {_name}={os.environ[_name]} overridden to {_value}", flush=True)
    os.environ[_name] = _value

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # python/: the sta package
sys.path.insert(0, HERE)  # diffusers_models

# HunyuanVideo's released head-specialised proportions (spec §7): 24 heads.
HUNYUAN_MIXED = [(5, 3, 3)] * 10 + [(1, 6, 10)] * 8 + [(3, 3, 5)] * 3 + [(5, 1, 10)] * 2 + [(5, 6, 1)] * 1


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["hunyuan", "wan"], required=True)
    parser.add_argument("--window", default="3x3x3",
                        help="uniform window in tiles (3x3x3, 5x5x5, ...) or 'mixed' (HunyuanVideo's head-specialised "
                             "proportions; wan: mixed over 40 heads in the same proportions)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model of the same architecture (CPU tests)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (kernel compilation)")
    parser.add_argument("--text-valid", type=int, default=None,
                        help="HunyuanVideo: valid text tokens of the prompt (default: all)")
    parser.add_argument("--kernel", default="auto", choices=["auto", "portable", "hopper"])
    parser.add_argument("--json", help="append the result row(s) to this JSON file (rank 0)")
    parser.add_argument("--baseline", help="JSON file of a one-GPU run of the same model and window: speedup and "
                                           "output comparison")
    parser.add_argument("--save-output", default="auto",
                        help="where rank 0 saves the step's output ('auto': next to --json on one GPU only; "
                             "'none': nowhere)")
    parser.add_argument("--check-attention", action="store_true",
                        help="compare one Ulysses call with the one-rank call first (real shape, batch 2)")
    parser.add_argument("--head-chunks", type=int, default=2,
                        help="attend each rank's heads in this many chunks so exchanges overlap attention "
                             "(1: exchange everything first, which times the exchanges alone)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def windows_for(name: str, window: str, heads: int):
    if window == "mixed":
        if heads == 24:
            return list(HUNYUAN_MIXED)
        # The same proportions over another head count (Wan: 40 heads).
        kinds = [(5, 3, 3), (1, 6, 10), (3, 3, 5), (5, 1, 10), (5, 6, 1)]
        shares = [10, 8, 3, 2, 1]
        result = []
        for kind, share in zip(kinds, shares):
            result += [kind] * round(share * heads / 24)
        return (result + [kinds[0]] * heads)[:heads]
    try:
        sizes = tuple(int(s) for s in window.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--window {window!r}: give sizes like 3x3x3, or 'mixed'") from None
    return [sizes] * heads


def setup_distributed(device_kind: str):
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("parallel_step: no CUDA GPU (use --tiny --device cpu to run on the CPU)")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if "RANK" in os.environ:  # under torchrun
        backend = "nccl" if device_kind == "cuda" else "gloo"
        kwargs = {"device_id": device} if device_kind == "cuda" else {}
        dist.init_process_group(backend, **kwargs)
    elif world != 1:
        raise SystemExit("parallel_step: WORLD_SIZE is set without RANK; start it with torchrun")
    return world, rank, device


def synchronize(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def barrier(world):
    import torch.distributed as dist

    if world > 1:
        dist.barrier()


def slowest(value: float, world: int, device) -> float:
    """The largest of ``value`` over ranks."""
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def check_attention(args, world, rank, device, dtype, problem, heads, head_dim, windows) -> dict:
    """One Ulysses call at the real shape (batch 2, the second row's text padded) against one rank's call
    over all heads: the relative L2 error of the gathered video and text outputs."""
    import torch
    import torch.distributed as dist

    import sta
    from sta.parallel import UlyssesAttention
    from sta.parallel.ulysses import _attend

    canvas = tuple(c // p for c, p in zip(problem["latent"][1:], (1, 2, 2)))
    tile = problem["tile"]
    text = problem["text"] if args.model == "hunyuan" else 0
    attend = UlyssesAttention(canvas, tile, windows, kernel=args.kernel)
    sharding = attend.sharding
    generator = torch.Generator(device="cpu").manual_seed(1234)
    batch = 2

    def random(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    plan = sta.Plan(canvas, tile, text=0, windows=[(1, 1, 1)])
    full = [plan.tile(random(batch, plan.video_tokens, heads, head_dim), dim=1) for _ in range(3)]
    text_parts = tuple(random(batch, text, heads, head_dim) for _ in range(3)) if text else None
    valid = torch.tensor([text, max(1, text * 2 // 3)], dtype=torch.int32, device=device) if text else None
    local = [sharding.shard(x, rank, dim=1) for x in full]
    result = attend(*local, text=text_parts, text_valid=valid) if text else attend(*local)
    video = result[0] if text else result
    pieces = [torch.empty_like(video.contiguous()) for _ in range(world)]
    if world > 1:
        dist.all_gather(pieces, video.contiguous())
    else:
        pieces = [video.contiguous()]
    gathered = torch.cat(pieces, dim=1)
    errors = {}
    if rank == 0:
        reference_plan = sta.Plan(canvas, tile, text=text, windows=windows)
        joined = [torch.cat([x, t], dim=1) if text else x for x, t in zip(full, text_parts or (None,) * 3)]
        reference = _attend(*[x.transpose(1, 2).contiguous() for x in joined], reference_plan, scale=None,
                            text_valid=valid, kernel=args.kernel).transpose(1, 2)
        ref_video = reference[:, :sharding.padded_tokens].float()
        errors["check_video_rel_error"] = float((gathered.float() - ref_video).norm() / ref_video.norm())
        errors["check_video_max_abs"] = float((gathered.float() - ref_video).abs().max())
        if text:
            ref_text = reference[:, sharding.padded_tokens:].float()
            errors["check_text_rel_error"] = float((result[1].float() - ref_text).norm() / ref_text.norm())
    del full, local, gathered, pieces
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return errors


def main(argv=None) -> int:
    args = parse_arguments(argv)
    import torch

    world, rank, device = setup_distributed(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    import diffusers_models

    from sta.parallel import StepTimer
    from sta.parallel.diffusers import enable_sta_parallelism
    from sta.parallel.traffic import Shape, ulysses_bytes
    from sta.strategy import Uniform

    def say(*parts):
        if rank == 0:
            print(*parts, flush=True)

    problem = diffusers_models.problem(args.model, args.tiny)
    started = time.perf_counter()
    model = diffusers_models.build(args.model, tiny=args.tiny, device=device, dtype=dtype, seed=args.seed)
    synchronize(device)
    build_s = time.perf_counter() - started
    heads = model.config.num_attention_heads
    head_dim = model.config.attention_head_dim
    windows = windows_for(args.model, args.window, heads)
    say(f"parallel_step: {args.model}{' (tiny)' if args.tiny else ''} on {world} {device.type} rank(s), "
        f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters {str(dtype).replace('torch.', '')}, "
        f"built in {build_s:.1f} s; window {args.window}")

    check = {}
    if args.check_attention:
        try:
            check = check_attention(args, world, rank, device, dtype, problem, heads, head_dim, windows)
            say("check-attention: " + ", ".join(f"{k} {v:.3e}" for k, v in check.items()))
        except Exception as error:  # the same library on every rank fails the same way; the step still runs
            check = {"check_error": f"{type(error).__name__}: {error}"}
            say(f"check-attention FAILED: {check['check_error']}")

    config = None
    if world > 1:
        from diffusers import ContextParallelConfig

        config = ContextParallelConfig(ulysses_degree=world)
    timer = StepTimer()
    context = enable_sta_parallelism(model, Uniform(windows), tile=problem["tile"], config=config,
                                     kernel=args.kernel, timer=timer, head_chunks=args.head_chunks)
    text_valid = None
    if args.model == "hunyuan" and args.text_valid is not None:
        text_valid = [args.text_valid]
    inputs = diffusers_models.inputs(args.model, model, tiny=args.tiny, device=device, dtype=dtype,
                                     text_valid=text_valid)
    times, phases, output = [], [], None
    with torch.no_grad():
        for step in range(args.warmup + args.steps):
            timer.reset()
            barrier(world)
            synchronize(device)
            begin = time.perf_counter()
            output = model(**inputs).sample
            synchronize(device)
            elapsed = slowest(time.perf_counter() - begin, world, device)
            totals = timer.totals()
            if step >= args.warmup:
                times.append(elapsed)
                phases.append(totals)
            say(f"  step {step}{' (warm-up)' if step < args.warmup else ''}: {elapsed:.3f} s, all-to-all "
                f"{totals.get('all_to_all', 0.0):.3f} s, attention {totals.get('attention', 0.0):.3f} s "
                f"(rank 0, {timer.counts().get('attention', 0)} calls)")

    median = statistics.median(times)
    at_median = phases[times.index(median)] if median in times else phases[0]
    sharding = context.sharding
    shape = Shape(args.model, context.canvas, tuple(problem["tile"]), heads, head_dim,
                  problem["text"] if args.model == "hunyuan" else 0, len(context.layers),
                  element_size=torch.tensor([], dtype=dtype).element_size())
    bytes_per_call = ulysses_bytes(shape, world) or 0
    all_to_all = at_median.get("all_to_all", 0.0)
    row = dict(model=args.model, attention="sta", window=args.window, gpus=world, device=device.type,
               tiny=args.tiny, step_s=median, steps=times, all_to_all_s=all_to_all,
               attention_s=at_median.get("attention", 0.0), layout_s=at_median.get("layout", 0.0),
               other_s=median - all_to_all - at_median.get("attention", 0.0) - at_median.get("layout", 0.0),
               canvas=list(context.canvas), tile=list(problem["tile"]), heads=heads,
               tiles_per_rank=sharding.tiles_per_rank, bytes_per_call_per_gpu=bytes_per_call,
               bytes_per_step_per_gpu=bytes_per_call * len(context.layers),
               all_to_all_GBps=(bytes_per_call * len(context.layers) / all_to_all / 1e9) if all_to_all else None,
               kernel=args.kernel, text_valid=args.text_valid, head_chunks=args.head_chunks, build_s=build_s,
               speedup=None, **check)
    if device.type == "cuda":
        row["gpu"] = torch.cuda.get_device_name(device)
        row["max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9

    if rank == 0:
        say(f"parallel_step: layout\n{sharding.describe()}")
        if args.baseline:
            compare_with_baseline(args, row, output)
        save_output(args, row, output)
        say(f"RESULT model={row['model']} gpus={world} window={args.window} step_s={median:.3f} "
            f"all_to_all_s={all_to_all:.3f} attention_s={row['attention_s']:.3f} other_s={row['other_s']:.3f}"
            + (f" speedup={row['speedup']:.3f}" if row["speedup"] else "")
            + (f" output_rel_error={row['output_rel_error']:.3e}" if "output_rel_error" in row else ""))
        if args.json:
            append_rows(args.json, [row])
    barrier(world)
    if world > 1 or "RANK" in os.environ:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def compare_with_baseline(args, row, output) -> None:
    import torch

    with open(args.baseline) as handle:
        rows = json.load(handle)
    matches = [r for r in rows if r.get("model") == row["model"] and r.get("window") == row["window"]
               and r.get("gpus") == 1 and r.get("tiny") == row["tiny"]]
    if not matches:
        print(f"parallel_step: {args.baseline} has no one-GPU row for {row['model']} {row['window']}", flush=True)
        return
    base = matches[-1]
    row["baseline_step_s"] = base["step_s"]
    row["speedup"] = base["step_s"] / row["step_s"]
    path = base.get("output_file")
    if path and not os.path.isabs(path):
        path = os.path.join(os.path.dirname(os.path.abspath(args.baseline)), path)
    if path and os.path.exists(path):
        reference = torch.load(path, map_location=output.device).float()
        got = output.float()
        row["output_rel_error"] = float((got - reference).norm() / reference.norm())
        row["output_max_abs"] = float((got - reference).abs().max())


def save_output(args, row, output) -> None:
    import torch

    # 'auto': the one-GPU run keeps its output next to its JSON file for later runs to compare with.
    if args.save_output == "none" or (args.save_output == "auto" and (not args.json or row["gpus"] != 1)):
        return
    if args.save_output == "auto":
        base = os.path.splitext(args.json)[0]
        path = f"{base}.{row['model']}.{row['window']}.gpus{row['gpus']}.pt"
    else:
        path = args.save_output
    torch.save(output.detach().cpu(), path)
    row["output_file"] = os.path.basename(path) if os.path.dirname(os.path.abspath(path)) == os.path.dirname(
        os.path.abspath(args.json or path)) else os.path.abspath(path)


def append_rows(path: str, rows) -> None:
    existing = []
    if os.path.exists(path):
        with open(path) as handle:
            existing = json.load(handle)
    with open(path, "w") as handle:
        json.dump(existing + rows, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
