"""The torchrun runner python/examples/parallel_step.py, tiny on the CPU over gloo: one rank, then two
ranks against it (output equal, speedup and the timing fields written). Skipped without torch, diffusers
or torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(os.path.dirname(HERE), "examples", "parallel_step.py")
sys.path.insert(0, os.path.dirname(HERE))

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)


sys.path.insert(0, HERE)
from test_parallel import PER_ROW_TEXT  # noqa: E402

# A prompt of 11 valid text tokens out of 16 where per-row text lengths run on this library's CPU path.
TEXT_VALID = ["--text-valid", "11"] if PER_ROW_TEXT else []


def run(tmp_path, ranks, *extra):
    torchrun = shutil.which("torchrun")
    command = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc-per-node", str(ranks), RUNNER,
        "--model", "hunyuan", "--tiny", "--device", "cpu", "--steps", "1", "--warmup", "1", *TEXT_VALID, *extra]
    environment = dict(os.environ, STA_LIBRARY=sta.library_path(), OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_two_ranks_against_one(tmp_path):
    one = tmp_path / "one.json"
    two = tmp_path / "two.json"
    run(tmp_path, 1, "--json", str(one))
    output = run(tmp_path, 2, "--json", str(two), "--baseline", str(one), "--check-attention")
    assert "RESULT model=hunyuan gpus=2" in output
    row = json.loads(two.read_text())[-1]
    assert row["model"] == "hunyuan" and row["attention"] == "sta" and row["gpus"] == 2
    assert row["speedup"] is not None and row["speedup"] > 0
    assert row["step_s"] > 0 and row["all_to_all_s"] > 0 and row["attention_s"] > 0
    assert row["output_rel_error"] <= 1e-5
    if PER_ROW_TEXT:  # the check pads the second row's text
        assert row["check_video_rel_error"] <= 1e-6 and row["check_text_rel_error"] <= 1e-6
    else:
        assert "check_error" in row and "text_valid" in row["check_error"]
    assert row["bytes_per_call_per_gpu"] > 0
    base = json.loads(one.read_text())[-1]
    assert base["gpus"] == 1 and base["all_to_all_s"] == 0
