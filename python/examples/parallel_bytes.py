#!/usr/bin/env python3
"""Bytes per denoising step and GPU for context-parallel STA: Ulysses (all-to-all over heads) against
halo exchange (each rank keeps all heads and fetches the K/V tiles its windows reach), and the hybrid of
the two for 64 GPUs. Pure Python (no torch, no GPU):

    python3 python/examples/parallel_bytes.py              # the table of docs/PARALLEL.md
    python3 python/examples/parallel_bytes.py --json rows.json

Time per step = bytes / link bandwidth: NVLink within a node (--nvlink GB/s per GPU and direction, the
all-to-all rate NCCL reaches), InfiniBand across nodes (--network). Compute per GPU = the one-GPU step
divided by P (HunyuanVideo: the measured non-attention time plus 60 STA calls; Wan: the same rate scaled
by its FLOPs, marked as an estimate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sta.parallel.traffic import SHAPES, halo_bytes, hybrid_bytes, ulysses_bytes, ulysses_group_bytes  # noqa: E402

# One-GPU step on the H200 (docs/PERFORMANCE.md, spec §7): non-attention time and STA per call, seconds.
NON_ATTENTION = {"hunyuan": 4.44, "wan": 4.44 * (1.93 / 1.56)}  # wan: scaled by its FLOPs (estimate)
ATTENTION = {("hunyuan", (3, 3, 3)): 0.02559, ("hunyuan", (5, 5, 5)): 0.11137,
             ("wan", (3, 3, 3)): 0.02665, ("wan", (5, 5, 5)): 0.1113 * 80640 ** 2 / 115200 ** 2 * 40 / 24}
WINDOWS = ((3, 3, 3), (5, 5, 5))
GPUS = (2, 8, 64)


def rows(nvlink: float, network: float):
    result = []
    for name, shape in SHAPES.items():
        for window in WINDOWS:
            windows = [window] * shape.heads
            step_one = NON_ATTENTION[name] + shape.layers * ATTENTION[(name, window)]
            for gpus in GPUS:
                bandwidth = nvlink if gpus <= 8 else network
                schemes = [("ulysses", ulysses_bytes(shape, gpus)), ("halo", halo_bytes(shape, gpus, windows))]
                if gpus == 64:
                    schemes.append(("ulysses 8 x halo 8", hybrid_bytes(shape, 8, 8, windows)))
                for scheme, per_call in schemes:
                    row = dict(model=name, window="x".join(map(str, window)), gpus=gpus, scheme=scheme,
                               link="NVLink" if gpus <= 8 else "network", compute_s=step_one / gpus,
                               estimate=name == "wan")
                    if per_call is None:
                        row.update(mb_per_call=None, gb_per_step=None, comm_s=None, comm_share=None,
                                   note=f"P > {shape.heads} heads")
                    else:
                        per_step = per_call * shape.layers
                        # The hybrid's halo part crosses the network, its Ulysses part stays on NVLink.
                        if scheme.startswith("ulysses 8"):
                            inside = ulysses_group_bytes(shape, 8, 8)
                            comm = inside * shape.layers / (nvlink * 1e9) + (per_step - inside * shape.layers) / (
                                network * 1e9)
                        else:
                            comm = per_step / (bandwidth * 1e9)
                        row.update(mb_per_call=per_call / 1e6, gb_per_step=per_step / 1e9, comm_s=comm,
                                   comm_share=comm / (step_one / gpus), note="")
                    result.append(row)
    return result


def markdown(table) -> str:
    lines = ["| model | window | GPUs | scheme | MB / call / GPU | GB / step / GPU | comm s / step | "
             "compute s / step / GPU | comm / compute |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        if r["mb_per_call"] is None:
            cells = ["n/a", "n/a", "n/a", f"{r['compute_s']:.2f}" + ("*" if r["estimate"] else ""), r["note"]]
        else:
            cells = [f"{r['mb_per_call']:.0f}", f"{r['gb_per_step']:.1f}", f"{r['comm_s']:.3f} ({r['link']})",
                     f"{r['compute_s']:.2f}" + ("*" if r["estimate"] else ""), f"{100 * r['comm_share']:.1f} %"]
        lines.append(f"| {r['model']} | {r['window']} | {r['gpus']} | {r['scheme']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nvlink", type=float, default=360.0, help="GB/s per GPU inside a node (default 360)")
    parser.add_argument("--network", type=float, default=50.0, help="GB/s per GPU across nodes (default 50)")
    parser.add_argument("--json", help="also write the rows to this file")
    arguments = parser.parse_args()
    table = rows(arguments.nvlink, arguments.network)
    print(markdown(table))
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(table, handle, indent=1)


if __name__ == "__main__":
    main()
