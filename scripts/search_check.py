#!/usr/bin/env python3
"""Checks ``sta search --gpu`` against the CPU search (the reference) on small synthetic captures.

Writes captures with heads of known locality (very local, local in time only, wide, random) for two
layouts — one whose tiles divide the canvas, one with holes and padded text — stored in bf16 and f16 as a
model writes them, then runs ``sta search --check`` on each set: every capture is measured on the GPU and
on the CPU, every (step, layer, candidate, head) error is compared (1 % relative plus 2^-8 of ‖full‖, the
rounding of the bf16 outputs) and so are the chosen windows. Exit status 0 when every run passes.

    python3 scripts/search_check.py --sta .build/release/sta            # needs a CUDA GPU
    python3 scripts/search_check.py --sta .build/release/sta --cpu-only  # the CPU search alone

Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np


def tile_order(canvas, tile):
    """For every sequence position of the video part (tiles in raster order, holes included), the canvas
    position (t, h, w) or None for a hole."""
    grid = [(c + t - 1) // t for c, t in zip(canvas, tile)]
    positions = []
    for gt in range(grid[0]):
        for gh in range(grid[1]):
            for gw in range(grid[2]):
                for ot in range(tile[0]):
                    for oh in range(tile[1]):
                        for ow in range(tile[2]):
                            p = (gt * tile[0] + ot, gh * tile[1] + oh, gw * tile[2] + ow)
                            positions.append(p if all(x < c for x, c in zip(p, canvas)) else None)
    return positions


def activations(canvas, tile, text, heads, head_dim, seed, valid=None, poison_unread=False):
    """q, k, v [1, H, S, D] float32: head kinds cycle through very local, time-local, wide and random.
    With `poison_unread`, the rows attention never reads (holes, padding text past `valid`) hold NaN: the
    search must ignore them (the GPU path zeroes them on the device)."""
    rng = np.random.default_rng(seed)
    positions = tile_order(canvas, tile)
    length = len(positions) + text
    q = rng.standard_normal((1, heads, length, head_dim)).astype(np.float32)
    k = rng.standard_normal((1, heads, length, head_dim)).astype(np.float32)
    v = rng.standard_normal((1, heads, length, head_dim)).astype(np.float32)
    kinds = [(3.0, 3.0, 3.0), (3.0, 0.0, 0.0), (0.3, 0.3, 0.3), None]
    root = np.sqrt(head_dim)
    for h in range(heads):
        beta = kinds[h % len(kinds)]
        if beta is None:
            continue
        for s, p in enumerate(positions):
            if p is None:
                q[0, h, s] = 0
                k[0, h, s] = 0
                v[0, h, s] = 0
                continue
            x = np.array([p[a] / tile[a] for a in range(3)], dtype=np.float64)   # in tiles
            # q·k/√D = Σ 2β x_q x_k − Σ β x_k² (−Σ β (x_q − x_k)² up to a per-query constant), plus noise.
            q[0, h, s, :4] = np.concatenate([2 * np.array(beta) * x, [1.0]]) * root
            k[0, h, s, :4] = np.concatenate([x, [-(np.array(beta) * x * x).sum()]])
            q[0, h, s, 4:] *= 0.1
            k[0, h, s, 4:] *= 0.1
    unread = [s for s, p in enumerate(positions) if p is None]
    unread += list(range(len(positions) + (text if valid is None else valid), length))
    for s in unread:
        q[:, :, s] = k[:, :, s] = v[:, :, s] = np.nan if poison_unread else 0
    return q, k, v


def to_bf16_bytes(x):
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def write_capture(path, tensors, dtype, metadata):
    """A .safetensors file: 8-byte header length, JSON header, data (q, k, v in name order)."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        x = tensors[name]
        data = to_bf16_bytes(x) if dtype == "BF16" else x.astype(np.float16).tobytes()
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


CASES = [
    # name, canvas, tile, text, text valid, heads, head dim, dtype, candidates, selection rule
    ("divisible-bf16", (8, 24, 24), (4, 8, 8), 0, 0, 4, 128, "BF16", "1x1x1,1x3x3,2x1x1,2x3x1,1x1x3,2x1x3",
     ["--tolerance", "0.5"]),
    ("holes-text-bf16", (7, 20, 22), (4, 8, 8), 64, 40, 4, 128, "BF16", None, []),
    ("holes-text-f16-d64", (7, 20, 22), (4, 8, 8), 64, 40, 4, 64, "F16", "1x1x1,1x3x3,2x1x1,2x3x1,1x1x3",
     ["--max-density", "0.3"]),
]


def check_non_finite(args, root):
    """A capture with NaN and +inf in rows attention reads is refused with exit status 65 and the same
    message (tensor, first [b, h, s, d], count) on the CPU and the GPU. Returns 1 on a difference."""
    canvas, tile, text, valid, heads, head_dim = (7, 20, 22), (4, 8, 8), 64, 40, 4, 128
    directory = os.path.join(root, "non-finite")
    os.makedirs(directory, exist_ok=True)
    q, k, v = activations(canvas, tile, text, heads, head_dim, seed=7, valid=valid, poison_unread=True)
    video = len(tile_order(canvas, tile))
    k[0, 2, 37, 5] = np.nan          # a real video token (tile 0 holds no holes)
    k[0, 3, video + 3, 0] = np.inf   # valid text
    path = os.path.join(directory, "step5_layer0_prompt0.safetensors")
    write_capture(path, {"q": q, "k": k, "v": v}, "BF16", {"step": "5", "layer": "0", "prompt": "0"})
    messages = []
    for extra in ([] if args.cpu_only else [["--gpu"]]) + [[]]:
        command = [args.sta, "search", "--canvas", "x".join(map(str, canvas)), "--tile", "x".join(map(str, tile)),
                   "--text", str(text), "--text-valid", str(valid), "--full-steps", "0",
                   "--output", os.path.join(root, "non-finite.json"), path] + extra
        result = subprocess.run(command, capture_output=True, text=True)
        error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        print(f"== non-finite {' '.join(extra) or '(CPU)'}: exit {result.returncode}: {error}", flush=True)
        messages.append((result.returncode, error))
    expected = "tensor 'k' holds 2 non-finite values (first nan at [b, h, s, d] = [0, 2, 37, 5])"
    ok = all(code == 65 and len(error) == 1 and expected in error[0] for code, error in messages)
    ok = ok and all(message == messages[0] for message in messages)
    print(f"== non-finite: {'refused alike' if ok else 'FAILED (expected exit 65 and: ' + expected + ')'}", flush=True)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sta", default=os.environ.get("STA_BINARY", ".build/release/sta"), help="the sta binary")
    parser.add_argument("--cpu-only", action="store_true", help="run the CPU search only (no GPU needed)")
    parser.add_argument("--keep", help="write the captures here and keep them")
    args = parser.parse_args()
    failures = 0
    root = args.keep or tempfile.mkdtemp(prefix="sta-search-check-")
    for name, canvas, tile, text, valid, heads, head_dim, dtype, candidates, rule in CASES:
        directory = os.path.join(root, name)
        os.makedirs(directory, exist_ok=True)
        for index, (step, layer, prompt) in enumerate([(2, 0, "a"), (2, 0, "b"), (3, 1, "a")]):
            q, k, v = activations(canvas, tile, text, heads, head_dim, seed=100 + index, valid=valid,
                                  poison_unread=index == 1)
            write_capture(os.path.join(directory, f"step{step}_layer{layer}_prompt{prompt}.safetensors"),
                          {"q": q, "k": k, "v": v}, dtype,
                          {"step": str(step), "layer": str(layer), "prompt": prompt})
        command = [args.sta, "search", "--canvas", "x".join(map(str, canvas)), "--tile", "x".join(map(str, tile)),
                   "--text", str(text), "--text-valid", str(valid), "--full-steps", "2",
                   "--output", os.path.join(root, f"{name}.json"), "--json", directory] + rule
        if candidates:
            command += ["--candidates", candidates]
        if not args.cpu_only:
            command.append("--check")
        print(f"== {name}: {' '.join(command)}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        sys.stdout.write(result.stderr)
        sys.stdout.write(result.stdout)
        print(f"== {name}: exit {result.returncode}", flush=True)
        failures += result.returncode != 0
    failures += check_non_finite(args, root)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print("search check: " + ("passed" if failures == 0 else f"{failures} case(s) FAILED"))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
