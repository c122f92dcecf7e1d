#!/usr/bin/env python3
"""Block-level emulation of Sources/STACUDAKernels/Kernels/sta_forward_sm80.cu in numpy.

Follows the kernel's control flow (block decode, query rows, key chunks, zero-filled loads, key-validity
flags, hole-chunk skipping, online softmax in log2 units, epilogue) with float32 arithmetic, and compares O
and LSE with a float64 dense reference under the STA mask built independently from the spec (§2-3).
It checks the indexing and masking logic, not the mma/ldmatrix fragment layouts.

Usage: scripts/emulate_sta_forward.py   (runs a set of small layouts; exits 1 on a mismatch)
"""
import itertools
import sys

import numpy as np

BLOCK_M, BLOCK_N = 128, 64


def ceil_div(a, b):
    return (a + b - 1) // b


class Layout:
    def __init__(self, canvas, tile, text_count=0, text_valid=None):
        pad = 3 - len(canvas)
        self.canvas = [1] * pad + list(canvas)
        self.tile = [1] * pad + list(tile)
        self.grid = [ceil_div(c, t) for c, t in zip(self.canvas, self.tile)]
        self.rank = len(canvas)
        self.text_count = text_count
        self.text_valid = text_count if text_valid is None else text_valid
        self.tile_vol = int(np.prod(self.tile))
        self.num_tiles = int(np.prod(self.grid))
        self.V = self.num_tiles * self.tile_vol
        self.S = self.V + text_count

    def tile_coords(self, tile):
        gt, gh, gw = self.grid
        return tile // (gh * gw), (tile // gw) % gh, tile % gw

    def is_hole(self, tile, offset):
        tc = self.tile_coords(tile)
        tt, th, tw = self.tile
        oc = (offset // (th * tw), (offset // tw) % th, offset % tw)
        return any(tc[a] * self.tile[a] + oc[a] >= self.canvas[a] for a in range(3))

    def tile_may_hold_holes(self, tile):
        tc = self.tile_coords(tile)
        return any(self.grid[a] * self.tile[a] != self.canvas[a] and tc[a] == self.grid[a] - 1 for a in range(3))

    def real(self, index):
        if index < self.V:
            return not self.is_hole(index // self.tile_vol, index % self.tile_vol)
        return index < self.V + self.text_valid


def plan(layout, head_windows):
    """window_of_head, key_tile_start, key_tiles as AttentionPlan builds them (spec §2 windows)."""
    windows, window_of_head = [], []
    for w in head_windows:
        w = [1] * (3 - len(w)) + list(w)
        w = [min(k, n) for k, n in zip(w, layout.grid)]
        if w not in windows:
            windows.append(w)
        window_of_head.append(windows.index(w))
    starts, tiles = [0], []
    for w in windows:
        for q in range(layout.num_tiles):
            qc = layout.tile_coords(q)
            ranges = []
            for a in range(3):
                n, k = layout.grid[a], w[a]
                if k >= n:
                    ranges.append(range(n))
                else:
                    r = k // 2
                    c = min(max(qc[a], r), n - 1 - r)
                    ranges.append(range(c - r, c + r + 1))
            for a, b, c in itertools.product(*ranges):
                tiles.append((a * layout.grid[1] + b) * layout.grid[2] + c)
            starts.append(len(tiles))
    return window_of_head, starts, tiles


def reference(layout, q, k, v, window_of_head, starts, tiles, scale):
    B, H, S, D = q.shape
    out = np.zeros((B, H, S, D))
    lse = np.full((B, H, S), -np.inf)
    real = np.array([layout.real(i) for i in range(S)])
    for h in range(H):
        mask = np.zeros((S, S), dtype=bool)
        w = window_of_head[h]
        for qi in range(S):
            if not real[qi]:
                continue
            if qi >= layout.V:
                mask[qi] = real
                continue
            qt = qi // layout.tile_vol
            allowed = tiles[starts[w * layout.num_tiles + qt]:starts[w * layout.num_tiles + qt + 1]]
            for kt in allowed:
                mask[qi, kt * layout.tile_vol:(kt + 1) * layout.tile_vol] = True
            mask[qi, layout.V:layout.V + layout.text_valid] = True
            mask[qi] &= real
        for b in range(B):
            # Masked keys contribute nothing; their (garbage) values must not reach the sums either.
            kb = np.nan_to_num(k[b, h].astype(np.float64))
            vb = np.nan_to_num(v[b, h].astype(np.float64))
            s = scale * q[b, h].astype(np.float64) @ kb.T
            s = np.where(mask, s, -np.inf)
            m = s.max(axis=1, keepdims=True)
            rows = np.isfinite(m[:, 0])
            p = np.where(rows[:, None], np.exp(s - np.where(rows[:, None], m, 0)), 0)
            l = p.sum(axis=1)
            out[b, h, rows] = (p[rows] @ vb) / l[rows, None]
            lse[b, h, rows] = m[rows, 0] + np.log(l[rows])
    return out, lse


def kernel(layout, q, k, v, window_of_head, starts, tiles, scale):
    """The kernel's control flow, one block at a time (query blocks of BLOCK_M rows, key chunks of BLOCK_N)."""
    B, H, S, D = q.shape
    o = np.full((B, H, S, D), np.nan, dtype=np.float32)       # poisoned output
    lse = np.full((B, H, S), np.nan, dtype=np.float32)
    qpt = ceil_div(layout.tile_vol, BLOCK_M)
    cpt = ceil_div(layout.tile_vol, BLOCK_N)
    text_blocks = ceil_div(layout.text_count, BLOCK_M)
    text_chunks = ceil_div(layout.text_valid, BLOCK_N)
    grid_x = text_blocks + layout.num_tiles * qpt
    log2e = np.float32(1.4426950408889634)
    for b, h, bx in itertools.product(range(B), range(H), range(grid_x)):
        if bx < text_blocks:
            q_first = layout.V + bx * BLOCK_M
            q_rows = min(BLOCK_M, S - q_first)
            q_tile, q_off = -1, 0
            key_tile_count, key_list = layout.num_tiles, None
        else:
            vb = bx - text_blocks
            q_tile = vb // qpt
            q_off = (vb - q_tile * qpt) * BLOCK_M
            q_first = q_tile * layout.tile_vol + q_off
            q_rows = min(BLOCK_M, layout.tile_vol - q_off)
            row = window_of_head[h] * layout.num_tiles + q_tile
            key_tile_count = starts[row + 1] - starts[row]
            key_list = tiles[starts[row]:starts[row + 1]]

        def query_is_real(r):
            if r >= q_rows:
                return False
            if q_tile >= 0:
                return not layout.is_hole(q_tile, q_off + r)
            return q_first - layout.V + r < layout.text_valid

        if not any(query_is_real(r) for r in range(BLOCK_M)):
            o[b, h, q_first:q_first + q_rows] = 0
            lse[b, h, q_first:q_first + q_rows] = -np.inf
            continue
        qs = np.zeros((BLOCK_M, D), dtype=np.float32)
        qs[:q_rows] = q[b, h, q_first:q_first + q_rows]
        acc = np.zeros((BLOCK_M, D), dtype=np.float32)
        mx = np.full(BLOCK_M, -np.inf, dtype=np.float32)
        sm = np.zeros(BLOCK_M, dtype=np.float32)
        chunk_count = key_tile_count * cpt + text_chunks
        for index in range(chunk_count):
            if index < key_tile_count * cpt:
                slot = index // cpt
                in_tile = (index - slot * cpt) * BLOCK_N
                tile = key_list[slot] if key_list is not None else slot
                start, length = tile * layout.tile_vol + in_tile, min(BLOCK_N, layout.tile_vol - in_tile)
            else:
                in_text = (index - key_tile_count * cpt) * BLOCK_N
                tile, start, length = -1, layout.V + in_text, min(BLOCK_N, layout.text_valid - in_text)
            holes = tile >= 0 and layout.tile_may_hold_holes(tile)
            keep = [j < length and (not holes or not layout.is_hole(tile, start - tile * layout.tile_vol + j))
                    for j in range(BLOCK_N)]
            assert all(start + j < S for j in range(BLOCK_N) if keep[j]), "load beyond S"
            ks = np.zeros((BLOCK_N, D), dtype=np.float32)
            vs = np.zeros((BLOCK_N, D), dtype=np.float32)
            for j in range(BLOCK_N):
                if keep[j]:
                    ks[j], vs[j] = k[b, h, start + j], v[b, h, start + j]
            needs_mask = length < BLOCK_N or holes
            if not any(keep):
                continue
            s = (qs @ ks.T) * np.float32(scale * log2e)
            if needs_mask:
                s[:, ~np.array(keep)] = -np.inf
            new_max = np.maximum(mx, s.max(axis=1))
            base = np.where(new_max == -np.inf, 0, new_max).astype(np.float32)
            corr = np.exp2(mx - base)
            mx = new_max
            p = np.exp2(s - base[:, None])
            sm = sm * corr + p.sum(axis=1)
            acc = acc * corr[:, None] + p @ vs
        for r in range(q_rows):
            if query_is_real(r) and sm[r] > 0:
                o[b, h, q_first + r] = acc[r] / sm[r]
                lse[b, h, q_first + r] = (mx[r] + np.log2(sm[r])) * np.float32(0.6931471805599453)
            else:
                o[b, h, q_first + r] = 0
                lse[b, h, q_first + r] = -np.inf
    return o, lse


def check(name, layout, head_windows, D=16, B=1, seed=0):
    rng = np.random.default_rng(seed)
    H = len(head_windows)
    q, k, v = (rng.standard_normal((B, H, layout.S, D)).astype(np.float32) for _ in range(3))
    # Garbage in the holes and the padding text: the kernel must never read it.
    for i in range(layout.S):
        if not layout.real(i):
            k[:, :, i] = np.nan
            v[:, :, i] = np.nan
    woh, starts, tiles = plan(layout, head_windows)
    scale = 1 / np.sqrt(D)
    ref_o, ref_lse = reference(layout, q, k, v, woh, starts, tiles, scale)
    o, lse = kernel(layout, q, k, v, woh, starts, tiles, scale)
    ok = not np.isnan(o).any() and not np.isnan(lse).any()
    err = np.linalg.norm(o - ref_o) / max(np.linalg.norm(ref_o), 1e-30)
    finite = np.isfinite(ref_lse)
    ok &= bool((np.isfinite(lse) == finite).all())
    lse_err = np.abs(lse[finite] - ref_lse[finite]).max() if finite.any() else 0.0
    ok &= err < 1e-5 and lse_err < 1e-4
    print(f"{'ok  ' if ok else 'FAIL'} {name}: S={layout.S} rel err {err:.2e}, lse err {lse_err:.2e}")
    return ok


def main():
    cases = [
        ("3D 12x16x16 tile 6x8x8 text 130/100 windows mixed",
         Layout([12, 16, 16], [6, 8, 8], 130, 100), [[1, 1, 1], [3, 1, 1], [2, 2, 2]]),
        ("3D padded 9x13x16 tile 6x8x8 no text", Layout([9, 13, 16], [6, 8, 8]), [[1, 1, 1], [3, 3, 3]]),
        ("3D padded W 6x8x13 tile 3x4x8 text 5/3", Layout([6, 8, 13], [3, 4, 8], 5, 3), [[1, 1, 1]]),
        ("2D 24x40 tile 8x16 (pad W) text 70/70", Layout([24, 40], [8, 16], 70, 70), [[1, 1], [3, 3]]),
        ("2D 16x16 tile 5x7 (odd volume, pad both)", Layout([16, 16], [5, 7], 3, 0), [[1, 1], [3, 3]]),
        ("1D 700 tile 200 text 65/64", Layout([700], [200], 65, 64), [[1], [3]]),
    ]
    ok = all([check(*c) for c in cases])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
