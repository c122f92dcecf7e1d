#!/usr/bin/env python3
"""Tensor work the Hopper forward kernel issues against the real (query, key) pairs, on the CPU.

Follows sta_sm90_work.cuh: one CTA per query block of 128 rows (packed real rows in tiles padded along T
and/or H only), every live key chunk of BLOCK_N keys of each key tile the block's tile attends (window
centre clamped inward), then the text chunks. Issued work counts 128 rows x BLOCK_N keys per chunk;
with split blocks a block of <= 64 rows counts 64 rows. Prints issued / real and the CTA classes.
"""
import itertools
from collections import Counter


def model(canvas, tile, text, window, block_n=192, block_m=128):
    grid = [(canvas[i] + tile[i] - 1) // tile[i] for i in range(3)]
    real = [canvas[i] - (grid[i] - 1) * tile[i] for i in range(3)]
    vol = tile[0] * tile[1] * tile[2]
    tiles = list(itertools.product(*[range(g) for g in grid]))

    def axes(t):
        return sum(1 << i for i in range(3) if canvas[i] != grid[i] * tile[i] and t[i] == grid[i] - 1)

    def real_count(t):
        a = axes(t)
        n = 1
        for i in range(3):
            n *= real[i] if (a >> i) & 1 else tile[i]
        return n

    def hole(offset, a):
        ot, oh, ow = offset // (tile[1] * tile[2]), (offset // tile[2]) % tile[1], offset % tile[2]
        return bool((a & 1 and ot >= real[0]) or (a & 2 and oh >= real[1]) or (a & 4 and ow >= real[2]))

    chunks_per_tile = (vol + block_n - 1) // block_n

    def live(a):
        n = chunks_per_tile
        while n > 1 and all(hole(o, a) for o in range((n - 1) * block_n, min(n * block_n, vol))):
            n -= 1
        return n

    def key_tiles(q):
        ranges = []
        for i in range(3):
            w = min(window[i], grid[i])
            start = min(max(q[i] - w // 2, 0), grid[i] - w)
            ranges.append(range(start, start + w))
        return list(itertools.product(*ranges))

    text_chunks = (text + block_n - 1) // block_n
    real_pairs = issued = issued_split = 0
    classes = Counter()
    for q in tiles:
        a = axes(q)
        keys = key_tiles(q)
        chunks = sum(live(axes(k)) for k in keys) + text_chunks
        real_pairs += real_count(q) * (sum(real_count(k) for k in keys) + text)
        packed = a != 0 and not a & 4
        for b in range((vol + block_m - 1) // block_m):
            if packed:
                rows = max(0, min(block_m, real_count(q) - b * block_m))
            else:
                rows = sum(not hole(o, a) for o in range(b * block_m, min(vol, (b + 1) * block_m)))
            if rows == 0:
                continue
            issued += block_m * chunks * block_n
            issued_split += (64 if rows <= 64 else block_m) * chunks * block_n
            classes[(a, rows, chunks)] += 1
    if text:
        all_real = sum(real_count(t) for t in tiles)
        chunks = sum(live(axes(t)) for t in tiles) + text_chunks
        for b in range((text + block_m - 1) // block_m):
            issued += block_m * chunks * block_n
            issued_split += block_m * chunks * block_n
            classes[("text", min(block_m, text - b * block_m), chunks)] += 1
        real_pairs += text * (all_real + text)
    return real_pairs, issued, issued_split, classes


PROBLEMS = [
    ("hunyuan 3x3x3", (30, 48, 80), (6, 8, 8), 256, (3, 3, 3)),
    ("hunyuan 5x5x5", (30, 48, 80), (6, 8, 8), 256, (5, 5, 5)),
    ("wan 3x3x3", (21, 45, 80), (6, 8, 8), 0, (3, 3, 3)),
    ("wan 3x5x5", (21, 45, 80), (6, 8, 8), 0, (3, 5, 5)),
]

if __name__ == "__main__":
    for name, canvas, tile, text, window in PROBLEMS:
        real_pairs, issued, issued_split, classes = model(canvas, tile, text, window)
        units = sum(classes.values())
        chunk_units = sum(n * c for (_, _, c), n in classes.items())
        print(f"{name}: issued/real {issued / real_pairs:.4f}, with split blocks {issued_split / real_pairs:.4f}; "
              f"{units} CTAs per head, {chunk_units / units:.1f} chunks per CTA on average")
        for (a, rows, chunks), n in sorted(classes.items(), key=str):
            print(f"    axes {a!s:>4}  rows {rows:3d}  chunks {chunks:3d}  x {n}")
