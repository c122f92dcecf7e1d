#!/usr/bin/env python3
"""One denoising step of real diffusers transformers (random weights, no gradients) with several attentions.

Models (diffusers 0.42 classes, published configurations, bf16, built directly on the GPU):
  hunyuan  HunyuanVideoTransformer3DModel 13B, latent [1, 16, 30, 96, 160] (30×48×80 tokens) + 256 text
  wan      WanTransformer3DModel 14B (Wan 2.1) at 720p, latent [1, 16, 21, 90, 160] (21×45×80 tokens, tile
           6×8×8 with holes) + 512 text tokens for the cross-attention
  flux     FluxTransformer2DModel (FLUX.1-dev) at 2K, 128×128 packed tokens + 512 text, tile 8×16

Attention modes (rows):
  default  diffusers' own processors and backend (HunyuanVideo passes its [B, 1, 1, N] text mask)
  cudnn    every attention call as SDPA on cuDNN or flash, the all-true text mask dropped
  free     the attention calls STA replaces return their query unchanged (a correctly shaped tensor at no
           cost): the step's non-attention time
  sta      STA with the model's uniform window (hunyuan 3×3×3, wan 3×3×3, flux 5×5)
  mixed    (hunyuan) STA with spec §7's per-head windows: 10×(5,3,3), 8×(1,6,10), 3×(3,3,5), 2×(5,1,10),
           1×(5,6,1)
  full15   (hunyuan) a strategy JSON with steps 0..14 full and 15..49 mixed: a full step and a sparse step
           are timed and the 50-step total is computed from them

Beside each STA and cuDNN row: the kernel's own time per call (CUDA events, median), and Amdahl's bound
= non-attention time (the free row) + calls × kernel time; STA rows also give layout_ms, the processors'
permutation of q, k, v into tile order and of the output back, per call. One failing mode is reported in its row and
the others continue. Warm-up runs the model with one block of each kind (every kernel compiled and
tuned at a thirtieth of the cost).

    python3 python/examples/bench_diffusers.py --output diffusers_step.json --log diffusers_step.log
    python3 python/examples/bench_diffusers.py --tiny --device cpu            # the whole path on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import diffusers_models as models  # noqa: E402
import sta  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta.strategy import FullFirst, MaskStrategy, Uniform  # noqa: E402

MIXED = [(5, 3, 3)] * 10 + [(1, 6, 10)] * 8 + [(3, 3, 5)] * 3 + [(5, 1, 10)] * 2 + [(5, 6, 1)]
MODES = {
    "hunyuan": ["sta", "free", "cudnn", "mixed", "full15", "default"],
    "wan": ["sta", "free", "cudnn", "default"],
    "flux": ["sta", "free", "cudnn", "default"],
}
DIFFUSERS_MODULES = {
    "hunyuan": "diffusers.models.transformers.transformer_hunyuan_video",
    "wan": "diffusers.models.transformers.transformer_wan",
    "flux": "diffusers.models.transformers.transformer_flux",
}
TOTAL_STEPS, FULL_STEPS = 50, 15


class Rows(list):
    """The result rows, written to ``path`` (if any) after every change, so a run cut short keeps them."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def append(self, row):
        super().append(row)
        self.save()

    def save(self):
        if self.path:
            with open(self.path, "w") as file:
                json.dump(list(self), file, indent=1)


class Log:
    def __init__(self, path):
        self.file = open(path, "a") if path else None
        self.start = time.perf_counter()

    def __call__(self, message):
        line = f"[{time.perf_counter() - self.start:7.1f} s] {message}"
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")
            self.file.flush()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def one_block_of_each_kind(name, model):
    """The model with its block lists cut to their first block (for warm-up)."""
    lists = ["blocks"] if name == "wan" else ["transformer_blocks", "single_transformer_blocks"]
    saved = {attribute: getattr(model, attribute) for attribute in lists}
    try:
        for attribute, blocks in saved.items():
            setattr(model, attribute, torch.nn.ModuleList(list(blocks)[:1]))
        yield
    finally:
        for attribute, blocks in saved.items():
            setattr(model, attribute, blocks)


FINITE = []  # whether each timed step's output was finite (random weights may overflow; timing is unaffected)


def run_step(model, arguments, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        output = model(**arguments).sample
    synchronize(device)
    elapsed = time.perf_counter() - start
    FINITE.append(bool(torch.isfinite(output).all()))
    return elapsed


def time_steps(name, model, arguments, device, repeats, warmup) -> list[float]:
    for _ in range(warmup):
        with one_block_of_each_kind(name, model):
            run_step(model, arguments, device)
    return [run_step(model, arguments, device) for _ in range(repeats)]


def time_call(function, device, repeats) -> float:
    """Median milliseconds of ``function()`` (CUDA events on a GPU, wall clock on a CPU), after one warm-up."""
    function()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            function()
            samples.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(samples)


# MARK: attention replacements


@contextlib.contextmanager
def patched_dispatch(name, replacement):
    """diffusers' ``dispatch_attention_fn`` as the model's module sees it, replaced for the block."""
    import importlib

    module = importlib.import_module(DIFFUSERS_MODULES[name])
    original = module.dispatch_attention_fn
    module.dispatch_attention_fn = replacement(original)
    try:
        yield
    finally:
        module.dispatch_attention_fn = original


def cudnn_dispatch(device, mask_all_true):
    def make(original):
        def dispatch(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
            if attn_mask is not None and not mask_all_true:
                raise ValueError("the cudnn mode drops the text mask, which is only right when every text token is "
                                 "real")
            q, k, v = (x.transpose(1, 2) for x in (query, key, value))
            if device.type == "cuda":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]):
                    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
            else:
                out = F.scaled_dot_product_attention(q, k, v, scale=scale)
            return out.transpose(1, 2)
        return dispatch
    return make


def free_dispatch(replaced_keys: int):
    """Calls with ``replaced_keys`` keys (the ones STA replaces) return their query; others run as before."""
    def make(original):
        def dispatch(query, key, value, *args, **kwargs):
            if key.shape[1] == replaced_keys:
                return query
            return original(query, key, value, *args, **kwargs)
        return dispatch
    return make


# MARK: per model


def canvas_of(name, problem):
    if name == "flux":
        return tuple(problem["grid"])
    latent = problem["latent"]
    patch = (1, 2, 2)
    return tuple(latent[i + 1] // patch[i] for i in range(3))


def bench_model(name, args, device, dtype, log, rows, deadline):
    problem = models.problem(name, args.tiny)
    canvas, tile, text = canvas_of(name, problem), tuple(problem["tile"]), problem["text"]
    log(f"{name}: building ({'tiny' if args.tiny else 'published'} configuration, {dtype}, {device})")
    start = time.perf_counter()
    model = models.build(name, tiny=args.tiny, device=device, dtype=dtype)
    synchronize(device)
    parameters = sum(p.numel() for p in model.parameters())
    log(f"{name}: {parameters / 1e9:.2f} B parameters in {time.perf_counter() - start:.1f} s; canvas {canvas}, "
        f"tile {tile}, text {text}")
    arguments = models.inputs(name, model, tiny=args.tiny, device=device, dtype=dtype)
    heads = model.config.num_attention_heads
    head_dim = model.config.attention_head_dim
    calls = models.attention_layers(name, model)
    video = math.prod(canvas)
    joint = video + (text if name != "wan" else 0)
    grid = tuple(-(-c // t) for c, t in zip(canvas, tile))
    base = dict(model=name + ("-tiny" if args.tiny else ""), canvas=list(canvas), tile=list(tile), text=text,
                heads=heads, head_dim=head_dim, attention_calls=calls, dtype=str(dtype).replace("torch.", ""),
                device=str(device), repeats=args.repeats)
    results = {}

    def plan_for(windows):
        per_head = windows if isinstance(windows, list) else [windows] * heads
        from sta.strategy import resolve_window

        resolved = [resolve_window(w, grid) for w in per_head]
        return sta.Plan(canvas, tile, text=(0 if name == "wan" else text), windows=resolved)

    def kernel_ms(plan):
        q, k, v = (torch.randn(1, heads, plan.sequence_length, head_dim, device=device, dtype=dtype) for _ in range(3))
        return time_call(lambda: sta.attention(q, k, v, plan, kernel=args.kernel), device, args.kernel_repeats)

    def layout_ms():
        """The processors' permutation cost per call: q, k, v into tile order and the output back."""
        from sta._diffusers_layout import JointLayout

        layout = JointLayout(canvas, tile, 0 if name == "wan" else text, name == "flux", device)
        x = torch.randn(1, layout.model_length, heads, head_dim, device=device, dtype=dtype)
        tiled = layout.to_tiles(x)
        return time_call(lambda: ([layout.to_tiles(x) for _ in range(3)], layout.from_tiles(tiled)), device,
                         args.kernel_repeats)

    def cudnn_kernel_ms():
        q, k, v = (torch.randn(1, heads, joint, head_dim, device=device, dtype=dtype) for _ in range(3))

        def call():
            if device.type == "cuda":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]):
                    F.scaled_dot_product_attention(q, k, v)
            else:
                F.scaled_dot_product_attention(q, k, v)
        return time_call(call, device, args.kernel_repeats)

    window = problem["window"]
    for mode in [m for m in args.modes if m in MODES[name]]:
        row = dict(base, attention=mode)
        FINITE.clear()
        if time.perf_counter() > deadline:
            row["error"] = "skipped: the time budget (--budget-s) is spent"
            rows.append(row)
            log(f"{name} {mode}: skipped (time budget)")
            continue
        try:
            if mode == "default":
                times = time_steps(name, model, arguments, device, args.repeats, args.warmup)
            elif mode == "cudnn":
                all_true = name != "hunyuan" or bool(arguments["encoder_attention_mask"].all())
                with patched_dispatch(name, cudnn_dispatch(device, all_true)):
                    times = time_steps(name, model, arguments, device, args.repeats, args.warmup)
                row["kernel_ms"] = cudnn_kernel_ms()
            elif mode == "free":
                with patched_dispatch(name, free_dispatch(joint)):
                    times = time_steps(name, model, arguments, device, args.repeats, args.warmup)
            elif mode in ("sta", "mixed"):
                windows = window if mode == "sta" else MIXED
                context = sd.enable_sta(model, strategy=Uniform(windows), tile=tile, kernel=args.kernel)
                try:
                    times = time_steps(name, model, arguments, device, args.repeats, args.warmup)
                finally:
                    sd.disable_sta(model)
                plan = plan_for(windows)
                row.update(windows=[list(w) for w in sorted(set(plan.windows))], video_sparsity=plan.video_sparsity,
                           kernel_ms=kernel_ms(plan), layout_ms=layout_ms(), window_sets=context.prepared_window_sets)
            elif mode == "full15":
                strategy = MaskStrategy.from_strategy(
                    FullFirst(FULL_STEPS, Uniform(MIXED)), steps=range(TOTAL_STEPS), layers=range(calls), heads=heads,
                    grid=grid)
                with tempfile.TemporaryDirectory() as folder:
                    path = os.path.join(folder, "strategy.json")
                    strategy.save(path)
                    context = sd.enable_sta(model, strategy=path, tile=tile, kernel=args.kernel)
                    try:
                        sd.set_step(model, 0)
                        full = time_steps(name, model, arguments, device, args.repeats, args.warmup)
                        sd.set_step(model, FULL_STEPS)
                        sparse = time_steps(name, model, arguments, device, args.repeats, 0)
                    finally:
                        sd.disable_sta(model)
                full_s, sparse_s = statistics.median(full), statistics.median(sparse)
                total = FULL_STEPS * full_s + (TOTAL_STEPS - FULL_STEPS) * sparse_s
                full_kernel, mixed_kernel = kernel_ms(plan_for(grid)), kernel_ms(plan_for(MIXED))
                row.update(full_step_s=full_s, sparse_step_s=sparse_s, full_steps=FULL_STEPS, total_steps=TOTAL_STEPS,
                           total_s=total, full_kernel_ms=full_kernel, kernel_ms=mixed_kernel,
                           window_sets=context.prepared_window_sets, strategy_entries=len(strategy))
                times = [total / TOTAL_STEPS]
            else:
                raise ValueError(f"unknown mode {mode}")
            row["step_s"] = statistics.median(times)
            row["steps_s"] = times
            row["output_finite"] = all(FINITE)
            results[mode] = row
            log(f"{name} {mode}: step {row['step_s']:.3f} s" + (f", kernel {row['kernel_ms']:.2f} ms/call"
                                                               if "kernel_ms" in row else ""))
        except Exception as error:  # one failing mode must not stop the others
            row["error"] = f"{type(error).__name__}: {error}"
            log(f"{name} {mode}: FAILED {row['error']}\n{traceback.format_exc()}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)

    # Amdahl's bound and ratios, once every mode has run
    free = results.get("free", {}).get("step_s")
    for mode, row in results.items():
        if free is not None:
            row["non_attention_s"] = free
        if free is not None and "kernel_ms" in row and mode != "full15":
            row["amdahl_s"] = free + calls * row["kernel_ms"] / 1e3
            row["step_over_amdahl"] = row["step_s"] / row["amdahl_s"]
            if "layout_ms" in row:  # what the permutations around the kernel add to the bound
                row["amdahl_with_layout_s"] = row["amdahl_s"] + calls * row["layout_ms"] / 1e3
        if mode == "full15" and free is not None:
            per_step = [row["full_kernel_ms"]] * FULL_STEPS + [row["kernel_ms"]] * (TOTAL_STEPS - FULL_STEPS)
            row["amdahl_total_s"] = TOTAL_STEPS * free + calls * sum(per_step) / 1e3
            row["amdahl_s"] = row["amdahl_total_s"] / TOTAL_STEPS
            row["step_over_amdahl"] = row["step_s"] / row["amdahl_s"]
        for reference in ("cudnn", "default"):
            if reference in results and mode != reference:
                row[f"speedup_vs_{reference}"] = results[reference]["step_s"] / row["step_s"]
        if mode == "full15":
            for reference in ("cudnn", "default"):
                if reference in results:
                    row[f"total_{reference}_s"] = TOTAL_STEPS * results[reference]["step_s"]
    del model, arguments
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="hunyuan,wan,flux", help="comma-separated: hunyuan, wan, flux")
    parser.add_argument("--modes", default="sta,free,cudnn,mixed,full15,default",
                        help="comma-separated, run in this order where the model has them: "
                             "default, cudnn, free, sta, mixed (hunyuan), full15 (hunyuan)")
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per mode (median)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs (one block of each kind) per mode")
    parser.add_argument("--kernel-repeats", type=int, default=5, help="timed kernel calls for kernel_ms")
    parser.add_argument("--kernel", default="auto", help="STA kernel: auto, portable, hopper")
    parser.add_argument("--tiny", action="store_true", help="tiny configurations of the same architectures")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default on CUDA) or float32 (default on CPU)")
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="start no new mode after this many seconds (rows say so)")
    parser.add_argument("--output", help="write the JSON rows here")
    parser.add_argument("--log", help="append the log here")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        if name not in MODES:
            raise SystemExit(f"unknown model {name!r}; allowed: {', '.join(MODES)}")
    for mode in args.modes:
        if mode not in {m for ms in MODES.values() for m in ms}:
            raise SystemExit(f"unknown mode {mode!r}; allowed: default, cudnn, free, sta, mixed, full15")
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    log = Log(args.log)
    deadline = time.perf_counter() + args.budget_s
    import diffusers

    log(f"torch {torch.__version__}, diffusers {diffusers.__version__}, sta library {sta.library_path()}, "
        f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    rows = Rows(args.output)
    for name in names:
        try:
            bench_model(name, args, device, dtype, log, rows, deadline)
        except Exception as error:  # a model that cannot be built or run
            rows.append(dict(model=name, attention="all", error=f"{type(error).__name__}: {error}"))
            log(f"{name}: FAILED {type(error).__name__}: {error}\n{traceback.format_exc()}")
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.save()  # with the Amdahl figures added after the model's last mode
    for row in rows:
        shown = {k: row[k] for k in ("model", "attention", "step_s", "non_attention_s", "kernel_ms", "amdahl_s",
                                      "total_s", "error") if k in row}
        print(json.dumps(shown))
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
