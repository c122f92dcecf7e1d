"""The end-to-end benchmark's whole path on tiny configurations (CPU): rows, Amdahl figures, the 50-step
total, and that a failing mode is reported while the others run. Timings are not asserted."""

from __future__ import annotations

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

needs_text_valid = pytest.mark.skipif(
    not sta._library.supports("text_valid"),
    reason="this libsta_c.so's CPU kernel takes no per-row text lengths (HunyuanVideo passes them)")

import bench_diffusers as bench  # noqa: E402


@needs_text_valid
def test_hunyuan_rows_and_figures(tmp_path):
    output = tmp_path / "rows.json"
    log = tmp_path / "bench.log"
    status = bench.main(["--tiny", "--device", "cpu", "--models", "hunyuan", "--modes", "free,sta,mixed,full15,cudnn",
                         "--kernel-repeats", "1", "--output", str(output), "--log", str(log)])
    assert status == 0
    rows = {row["attention"]: row for row in json.loads(output.read_text())}
    assert set(rows) == {"free", "sta", "mixed", "full15", "cudnn"}
    free = rows["free"]["step_s"]
    for mode in ("sta", "mixed", "cudnn"):
        row = rows[mode]
        assert row["model"] == "hunyuan-tiny" and row["step_s"] > 0 and row["non_attention_s"] == free
        assert row["amdahl_s"] == pytest.approx(free + 3 * row["kernel_ms"] / 1e3)
    assert rows["mixed"]["windows"] == [[1, 3, 4], [3, 3, 4], [5, 1, 4], [5, 3, 1], [5, 3, 3]]
    full = rows["full15"]
    assert full["total_s"] == pytest.approx(15 * full["full_step_s"] + 35 * full["sparse_step_s"])
    assert full["strategy_entries"] == 50 * 3 * 24 and full["window_sets"] == 2
    assert "speedup_vs_cudnn" in rows["sta"]
    assert "hunyuan sta: step" in log.read_text()


def test_a_failing_mode_is_reported_and_the_rest_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(bench.sd, "enable_sta", broken)
    output = tmp_path / "rows.json"
    status = bench.main(["--tiny", "--device", "cpu", "--models", "wan", "--modes", "sta,free,default",
                         "--kernel-repeats", "1", "--output", str(output)])
    assert status == 1
    rows = {row["attention"]: row for row in json.loads(output.read_text())}
    assert rows["sta"]["error"] == "RuntimeError: injected failure"
    assert rows["free"]["step_s"] > 0 and rows["default"]["step_s"] > 0
    assert "error" not in rows["free"] and "error" not in rows["default"]
