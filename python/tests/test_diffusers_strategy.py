"""sta.strategy: window rules, the mask-strategy JSON (round trip, the format `sta search` writes, errors)
and the strategy combinators. Needs neither torch nor the library."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sta.strategy import (  # noqa: E402
    FULL, FullFirst, MaskStrategy, PerLayer, Uniform, as_strategy, load_strategy, resolve_window)

GRID = (5, 6, 10)  # HunyuanVideo 30×48×80 in tiles of 6×8×8


def test_resolve_window_rules():
    assert resolve_window((3, 3, 3), GRID) == (3, 3, 3)
    assert resolve_window((18, 24, 24), GRID) == (5, 6, 10)
    assert resolve_window((5, 6, 10), GRID) == (5, 6, 10)
    assert resolve_window((1, 6, 11), GRID) == (1, 6, 10)
    assert resolve_window(FULL, GRID) == GRID
    with pytest.raises(ValueError, match="size 4 on axis 1 is even and smaller than the axis' 6 tiles"):
        resolve_window((3, 4, 3), GRID)
    with pytest.raises(ValueError, match="has 2 sizes; the tile grid"):
        resolve_window((3, 3), GRID)


def test_window_values_are_checked():
    with pytest.raises(TypeError, match="give one size per canvas axis"):
        Uniform(3)
    with pytest.raises(ValueError, match="positive number of tiles"):
        Uniform((3, 0, 3))
    with pytest.raises(ValueError, match="1 to 3 sizes"):
        Uniform((3, 3, 3, 3))


def test_uniform_and_per_head():
    mixed = [(5, 3, 3)] * 10 + [(1, 6, 10)] * 8 + [(3, 3, 5)] * 3 + [(5, 1, 10)] * 2 + [(5, 6, 1)]
    strategy = Uniform(mixed)
    assert strategy.resolved(7, 12, 24, GRID) == tuple(mixed)
    assert strategy.window_sets(range(60), 24, GRID) == {tuple(mixed)}
    with pytest.raises(ValueError, match="24 per-head windows; the model has 40 heads"):
        strategy.windows(0, 0, 40)
    assert Uniform((3, 3, 3)).windows(3, 4, 2) == [(3, 3, 3), (3, 3, 3)]


def test_per_layer():
    strategy = PerLayer({0: (5, 5, 5), 2: [(1, 1, 1), (3, 3, 3)]}, default=(3, 3, 3))
    assert strategy.resolved(0, 0, 2, GRID) == ((5, 5, 5), (5, 5, 5))
    assert strategy.resolved(0, 1, 2, GRID) == ((3, 3, 3), (3, 3, 3))
    assert strategy.resolved(0, 2, 2, GRID) == ((1, 1, 1), (3, 3, 3))
    assert len(strategy.window_sets(range(3), 2, GRID)) == 3
    with pytest.raises(ValueError, match=r"no window for layer 5 \(layers listed: 0..2\) and no default"):
        PerLayer([(3, 3, 3)] * 3).windows(0, 5, 2)


def test_full_first():
    strategy = FullFirst(15, Uniform((3, 3, 3)))
    assert strategy.resolved(14, 0, 2, GRID) == (GRID, GRID)
    assert strategy.resolved(15, 0, 2, GRID) == ((3, 3, 3), (3, 3, 3))
    assert strategy.steps() == list(range(16))
    assert strategy.window_sets(range(60), 2, GRID) == {(GRID, GRID), ((3, 3, 3), (3, 3, 3))}
    with pytest.raises(ValueError, match="full steps is -1"):
        FullFirst(-1)


def entries(steps=2, layers=3, heads=4):
    return {(s, layer, h): ([5, 6, 10] if s == 0 else [1 + 2 * (h % 3), 3, 3])
            for s in range(steps) for layer in range(layers) for h in range(heads)}


def test_json_round_trip(tmp_path):
    strategy = MaskStrategy(entries())
    path = tmp_path / "strategy.json"
    strategy.save(path)
    text = path.read_text()
    # the layout `sta search` writes: one entry per line, sorted by step, layer, head
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert lines[1] == '  "0_0_0": [5, 6, 10],'
    assert lines[-2] == '  "1_2_3": [1, 3, 3]'
    keys = [tuple(int(x) for x in line.split('"')[1].split("_")) for line in lines[1:-1]]
    assert keys == sorted(keys)
    loaded = load_strategy(path)
    assert dict(loaded.items()) == {k: tuple(v) for k, v in entries().items()}
    assert loaded.to_json() == text
    assert json.loads(text) == {f"{s}_{layer}_{h}": v for (s, layer, h), v in entries().items()}
    assert loaded.steps() == [0, 1] and loaded.layers() == [0, 1, 2] and len(loaded) == 24
    assert isinstance(as_strategy(str(path)), MaskStrategy)


def test_json_tabulates_any_strategy():
    strategy = FullFirst(1, Uniform([(3, 3, 3), (1, 6, 10)]))
    table = MaskStrategy.from_strategy(strategy, steps=range(3), layers=range(2), heads=2, grid=GRID)
    assert table[(0, 1, 1)] == GRID and table[(2, 1, 1)] == (1, 6, 10)
    again = MaskStrategy.from_json(table.to_json())
    assert dict(again.items()) == dict(table.items())


@pytest.mark.parametrize("text,message", [
    ('[1, 2]', "not a JSON object"),
    ('{"0_0": [3, 3, 3]}', 'key "0_0" is not "<step>_<layer>_<head>"'),
    ('{"0_0_-1": [3, 3, 3]}', "is not"),
    ('{"a_0_0": [3, 3, 3]}', "is not"),
    ('{"0_0_0": [3, 0, 3]}', "array of positive integers"),
    ('{"0_0_0": [3, 3.5, 3]}', "array of positive integers"),
    ('{"0_0_0": "3x3x3"}', "array of positive integers"),
    ('{"0_0_0": [3, 3, 3, 3]}', "1 to 3 sizes"),
    ('{"0_0_0": [3, 3, 3], "0_0_0": [1, 1, 1]}', "appears twice"),
    ('{}', "no entries"),
    ('{"0_0_0": [3, 3, 3]', "not valid JSON"),
])
def test_json_errors(text, message):
    with pytest.raises((ValueError, TypeError), match=message):
        MaskStrategy.from_json(text, source="s.json")


def test_missing_steps_layers_heads_are_named():
    strategy = MaskStrategy(entries(steps=2, layers=3, heads=4), source="s.json")
    with pytest.raises(ValueError, match=r"s.json: the strategy has no entries for step 5 \(steps present: 0..1\)"):
        strategy.windows(5, 0, 4)
    with pytest.raises(ValueError, match=r"no entries for layer 3 at step 1 \(layers present at that step: 0..2\)"):
        strategy.windows(1, 3, 4)
    with pytest.raises(ValueError, match=r"step 0, layer 0 lacks heads 4..5; the model has 6 heads"):
        strategy.windows(0, 0, 6)
    with pytest.raises(ValueError, match=r"lists heads 2..3; the model has only 2 heads"):
        strategy.windows(0, 0, 2)
    holes = entries(steps=1, layers=1, heads=4)
    del holes[(0, 0, 2)]
    with pytest.raises(ValueError, match="lacks heads 2;"):
        MaskStrategy(holes).windows(0, 0, 4)
    with pytest.raises(ValueError, match="even and smaller"):
        MaskStrategy({(0, 0, 0): [2, 3, 3]}).validate(steps=[0], layers=[0], heads=1, grid=GRID)
