#!/usr/bin/env python3
"""Capture → search → apply on HunyuanVideo's architecture (random weights): the whole loop and its cost.

1. capture: the transformer runs with full attention (the STA kernel with the full window) at the chosen
   denoising steps, and ``sta.capture.Capture`` writes the tile-order q, k, v of the chosen layers as
   .safetensors files;
2. search: ``sta search`` (the CLI of this package) measures every candidate window on every head against
   full attention and writes the mask-strategy JSON (timed; per-capture time reported);
3. apply: the JSON is loaded into the processors (``sta.diffusers.set_strategy``) and a step after the full
   steps and one inside them are timed; the 50-step total follows from them.

With random weights the windows the search picks mean nothing; the path and its time are what this shows.

A whole strategy needs every (step >= full steps, layer) captured: 35 × 60 captures of 2.1 GB each on the
13B model at 720p, far more than a device's disk, so on the GPU capture a few layers of one step
(``--capture-layers 0,20 --capture-steps 15``); the script then reports the measured search time per
capture and the extrapolated time of the whole strategy (steps × layers × that), and fills the windows of
the (step, layer) pairs it did not capture from the nearest captured pair (reported as "filled") so that a
complete strategy is applied. ``--tiny`` captures everything and applies the search's own JSON.

    # CPU, tiny configuration (every step and layer captured and searched):
    python3 python/examples/capture_search_apply.py --tiny --device cpu
    # H200, HunyuanVideo 13B, 720p:
    python3 python/examples/capture_search_apply.py --device cuda --capture-steps 15 --capture-layers 0,20 \
        --candidates 3x3x3,5x3x3,1x6x10,3x3x5,5x1x10,5x6x1,5x5x5 --gpu-search
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import diffusers_models as models  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta.capture import Capture  # noqa: E402
from sta.strategy import FULL, MaskStrategy, load_strategy  # noqa: E402


def find_sta(explicit: str | None) -> str:
    candidates = [explicit, os.environ.get("STA_BINARY")]
    repository = os.path.dirname(os.path.dirname(HERE))
    candidates += [os.path.join(repository, ".build", c, "sta") for c in ("release", "debug")]
    candidates.append(shutil.which("sta"))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise SystemExit("the sta CLI was not found: build it (swift build -c release --product sta) or pass --sta")


def parse_list(text: str | None, everything: list[int]) -> list[int]:
    if text is None or text == "all":
        return everything
    values = []
    for part in text.split(","):
        if ".." in part:
            low, high = part.split("..")
            values += list(range(int(low), int(high) + 1))
        else:
            values.append(int(part))
    return values


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(model, arguments, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        model(**arguments)
    synchronize(device)
    return time.perf_counter() - start


def fill_strategy(searched: MaskStrategy, *, steps: int, layers: list[int], heads: int) -> tuple[MaskStrategy, int]:
    """Every (step, layer, head) of steps × layers: the searched entry where there is one, else the entry of
    the nearest searched step, then the nearest searched layer. Returns the table and the filled pairs."""
    table = dict(searched.items())
    pairs = sorted({(s, layer) for s, layer, _ in table})
    filled = 0
    for step in range(steps):
        for layer in layers:
            if (step, layer, 0) in table:
                continue
            source = min(pairs, key=lambda p: (abs(p[0] - step), abs(p[1] - layer)))
            for head in range(heads):
                table[(step, layer, head)] = table[(source[0], source[1], head)]
            filled += 1
    return MaskStrategy(table, source="filled strategy"), filled


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny HunyuanVideo configuration (CPU-sized)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, help="denoising steps of the schedule (default 50; tiny 4)")
    parser.add_argument("--full-steps", type=int, help="steps kept full (default 15; tiny 2)")
    parser.add_argument("--capture-steps", help="steps to capture, e.g. 15 or 15..49 (default: every step after "
                        "the full ones on --tiny, else the first one after them)")
    parser.add_argument("--capture-layers", help="layers to capture, e.g. 0,20 or all (default: all on --tiny, "
                        "else 0,20)")
    parser.add_argument("--candidates", help="sta search --candidates (default: the CLI's full list)")
    parser.add_argument("--gpu-search", action="store_true", help="sta search --gpu")
    parser.add_argument("--sta", help="the sta CLI (default: $STA_BINARY, .build/release/sta, .build/debug/sta)")
    parser.add_argument("--workdir", help="where captures and JSON go (default: a temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the captures")
    parser.add_argument("--output", help="write the summary JSON here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    steps = args.steps or (4 if args.tiny else 50)
    full_steps = args.full_steps if args.full_steps is not None else (2 if args.tiny else 15)
    if not 0 <= full_steps < steps:
        raise SystemExit(f"--full-steps {full_steps} must be in 0..<{steps}")
    sta_cli = find_sta(args.sta)
    workdir = args.workdir or tempfile.mkdtemp(prefix="sta-capture-")
    os.makedirs(workdir, exist_ok=True)
    summary = {"model": "hunyuan" + ("-tiny" if args.tiny else ""), "device": str(device), "steps": steps,
               "full_steps": full_steps}

    start = time.perf_counter()
    model = models.build("hunyuan", tiny=args.tiny, device=device, dtype=dtype)
    synchronize(device)
    summary["build_s"] = time.perf_counter() - start
    problem = models.problem("hunyuan", args.tiny)
    layers = list(range(models.attention_layers("hunyuan", model)))
    heads = model.config.num_attention_heads
    capture_steps = parse_list(args.capture_steps, list(range(full_steps, steps)) if args.tiny else [full_steps])
    capture_layers = parse_list(args.capture_layers, layers if args.tiny else [0, len(model.transformer_blocks)])
    print(f"HunyuanVideo{' (tiny)' if args.tiny else ''} on {device}: {len(layers)} attention layers, {heads} heads; "
          f"capturing steps {capture_steps} × layers {capture_layers} into {workdir}", flush=True)

    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    scheduler.set_timesteps(steps)
    arguments = models.inputs("hunyuan", model, tiny=args.tiny, device=device, dtype=dtype)

    # 1. capture (full attention through the STA kernel)
    capture = Capture(os.path.join(workdir, "captures"), steps=capture_steps, layers=capture_layers, prompt="0")
    sd.enable_sta(model, strategy=FULL, tile=problem["tile"], capture=capture, prepare="lazy")
    start = time.perf_counter()
    for step in capture_steps:
        sd.set_step(model, step)
        arguments["timestep"] = scheduler.timesteps[step].expand(1).to(device=device, dtype=dtype)
        timed_call(model, arguments, device)
    summary["capture_s"] = time.perf_counter() - start
    summary["captures"] = len(capture.files)
    summary["capture_bytes"] = sum(os.path.getsize(f) for f in capture.files)
    print(f"captured {len(capture.files)} files ({summary['capture_bytes'] / 1e9:.2f} GB) in "
          f"{summary['capture_s']:.1f} s", flush=True)

    # 2. search
    searched_path = os.path.join(workdir, "searched.json")
    extra = []
    if args.candidates:
        extra += ["--candidates", args.candidates]
    if args.gpu_search:
        extra.append("--gpu")
    command = capture.search_command(sta_cli, searched_path, full_steps=full_steps, extra=extra)
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    summary["search_s"] = time.perf_counter() - start
    sys.stderr.write(result.stderr)   # progress: one line per capture with its seconds
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise SystemExit(f"sta search failed with status {result.returncode}")
    measured = len([f for f in capture.files])
    per_capture = summary["search_s"] / max(1, measured)
    whole = (steps - full_steps) * len(layers)
    # The CLI's per-capture seconds ("[i/n] path: ..., 1.23 s ..."): the first capture also pays the kernel
    # compiles and the cold start, so the steady per-capture cost is the mean of the others, and the rest of
    # the wall time is a fixed cost paid once per call.
    seconds = [float(m.group(1)) for m in re.finditer(r"^\[\d+/\d+\] .*?, ([0-9.]+) s\b", result.stderr, re.M)]
    steady = sum(seconds[1:]) / len(seconds[1:]) if len(seconds) > 1 else per_capture
    fixed = max(0.0, summary["search_s"] - sum(seconds)) + (seconds[0] - steady if len(seconds) > 1 else 0.0)
    summary.update(search_per_capture_s=per_capture, search_capture_s=seconds, search_steady_capture_s=steady,
                   search_fixed_s=fixed, whole_strategy_captures=whole,
                   whole_strategy_search_s_extrapolated=fixed + steady * whole,
                   search_command=command)
    print(f"search: {summary['search_s']:.1f} s for {measured} captures ({per_capture:.2f} s each; "
          f"{steady:.2f} s each after the first, {fixed:.1f} s once); a whole strategy ({steps - full_steps} "
          f"steps × {len(layers)} layers × {heads} heads) ≈ {fixed + steady * whole:.0f} s", flush=True)

    # 3. apply
    searched = load_strategy(searched_path)
    complete, filled = fill_strategy(searched, steps=steps, layers=layers, heads=heads)
    summary["filled_pairs"] = filled
    applied_path = searched_path if filled == 0 else os.path.join(workdir, "strategy.json")
    if filled:
        complete.save(applied_path)
        print(f"filled {filled} (step, layer) pairs that were not captured from the nearest captured pair "
              f"-> {applied_path}")
    context = sd.context(model)
    context.capture = None
    context.prepare_mode = "all"  # every window set of the strategy planned (and warmed on a GPU) at the next call
    sd.set_strategy(model, applied_path)
    times = {}
    from bench_diffusers import one_block_of_each_kind

    for label, step in (("full_step", 0), ("sparse_step", full_steps)):
        sd.set_step(model, step)
        arguments["timestep"] = scheduler.timesteps[step].expand(1).to(device=device, dtype=dtype)
        with one_block_of_each_kind("hunyuan", model):
            timed_call(model, arguments, device)  # plans of every step prepared, kernels warm
        times[label] = timed_call(model, arguments, device)
    sd.disable_sta(model)
    summary.update(times)
    summary["total_50_step_s"] = full_steps * times["full_step"] + (steps - full_steps) * times["sparse_step"]
    summary["window_sets"] = context.prepared_window_sets
    print(f"applied: step 0 (full) {times['full_step']:.3f} s, step {full_steps} {times['sparse_step']:.3f} s; "
          f"{steps} steps ≈ {summary['total_50_step_s']:.1f} s; {context.prepared_window_sets} window sets",
          flush=True)

    if args.output:
        with open(args.output, "w") as file:
            json.dump(summary, file, indent=2)
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not args.keep:
        shutil.rmtree(os.path.join(workdir, "captures"), ignore_errors=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "search_command"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
