"""The bytes model of sta.parallel.traffic against hand counts on small problems (pure Python)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sta.parallel.traffic import (  # noqa: E402
    SHAPES, Shape, halo_bytes, halo_tiles, hybrid_bytes, tile_shards, ulysses_bytes)


def test_ulysses_bytes_by_hand():
    # 4 tiles of 2 tokens, 4 heads of D 2, bf16, 2 ranks: each rank holds 4 tokens and 2 heads.
    shape = Shape("toy", (8,), (2,), heads=4, head_dim=2, text=3, layers=1)
    # in: 3 tensors x 4 tokens x 2 other heads x 2 x 2 bytes; out: 2 heads x (4 other tokens + 3 text) x 2 x 2.
    assert ulysses_bytes(shape, 2) == 3 * 4 * 2 * 2 * 2 + 2 * (4 + 3) * 2 * 2
    assert ulysses_bytes(shape, 1) == 0
    assert ulysses_bytes(shape, 8) is None  # more ranks than heads


def test_ulysses_uneven_heads_take_the_busiest_rank():
    shape = Shape("toy", (8,), (2,), heads=3, head_dim=2, text=0, layers=1)
    # rank 0: 2 heads (sends 1 other head in, 2 heads out); rank 1: 1 head (2 in, 1 out).
    rank0 = 3 * 4 * 1 * 2 * 2 + 2 * 4 * 2 * 2
    rank1 = 3 * 4 * 2 * 2 * 2 + 1 * 4 * 2 * 2
    assert ulysses_bytes(shape, 2) == max(rank0, rank1)


def test_halo_tiles_follow_the_clamped_window():
    shape = Shape("toy", (8,), (1,), heads=1, head_dim=1, text=0, layers=1)  # 8 tiles in a row
    # 2 ranks of 4 tiles, window 3: rank 0 needs tile 4, rank 1 tile 3.
    assert halo_tiles(shape, 2, (3,)) == 1
    # window 5 (radius 2): rank 0's tile 3 reaches 5 -> tiles 4, 5.
    assert halo_tiles(shape, 2, (5,)) == 2
    # a window of the whole axis needs every other tile.
    assert halo_tiles(shape, 2, (9,)) == 4
    # 4 ranks of 2 tiles, window 3: the border windows are pushed inward: rank 0 (tiles 0, 1) needs 2.
    assert halo_tiles(shape, 4, (3,)) == 2


def test_halo_bytes_count_k_and_v_and_the_text_reduction():
    shape = Shape("toy", (8,), (1,), heads=2, head_dim=4, text=2, layers=1)
    kv = 1 * 1 * 1 * 4 * 2 * 2 * 2  # tiles x volume x batch x D x bytes x (K, V) x heads
    text = 2 * (2 - 1) / 2 * 1 * 2 * 2 * (4 + 1) * 4
    assert halo_bytes(shape, 2, [(3,)] * 2) == int(kv + text)


def test_tile_shards_and_the_published_shapes():
    assert [len(r) for r in tile_shards(10, 4)] == [3, 3, 2, 2]
    hunyuan, wan = SHAPES["hunyuan"], SHAPES["wan"]
    assert hunyuan.grid == (5, 6, 10) and hunyuan.padded_tokens == 115200
    assert wan.grid == (4, 6, 10) and wan.padded_tokens == 92160
    # HunyuanVideo 3x3x3 on 2 GPUs: halo exchange moves less than Ulysses; on 8 GPUs more.
    windows = [(3, 3, 3)] * 24
    assert halo_bytes(hunyuan, 2, windows) < ulysses_bytes(hunyuan, 2)
    assert halo_bytes(hunyuan, 8, windows) > ulysses_bytes(hunyuan, 8)
    # The hybrid on 64 GPUs moves less per GPU than halo exchange alone.
    assert hybrid_bytes(hunyuan, 8, 8, windows) < halo_bytes(hunyuan, 64, windows)
