"""Capture → `sta search` → apply, end to end on a tiny HunyuanVideo (CPU), and the capture format.

Needs torch, diffusers, safetensors, libsta_c.so and the sta CLI ($STA_BINARY or the repository's
.build/release/sta or .build/debug/sta); skipped without them.
"""

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
safetensors = pytest.importorskip("safetensors.torch")

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

needs_text_valid = pytest.mark.skipif(
    not sta._library.supports("text_valid"),
    reason="this libsta_c.so's CPU kernel takes no per-row text lengths (HunyuanVideo passes them)")

import capture_search_apply as demo  # noqa: E402
import diffusers_models as models  # noqa: E402
import sta.diffusers as sd  # noqa: E402
from sta.capture import Capture  # noqa: E402
from sta.strategy import FULL, load_strategy  # noqa: E402


def sta_cli():
    try:
        return demo.find_sta(None)
    except SystemExit:
        pytest.skip("the sta CLI is not built (swift build -c release --product sta)")


@needs_text_valid
def test_capture_search_apply_end_to_end(tmp_path):
    cli = sta_cli()
    output = tmp_path / "summary.json"
    assert demo.main(["--tiny", "--device", "cpu", "--sta", cli, "--workdir", str(tmp_path), "--keep",
                      "--output", str(output)]) == 0
    summary = json.loads(output.read_text())
    assert summary["captures"] == 6 and summary["filled_pairs"] == 0  # steps 2, 3 × layers 0..2
    strategy = load_strategy(tmp_path / "searched.json")
    assert strategy.steps() == [0, 1, 2, 3] and strategy.layers() == [0, 1, 2] and len(strategy) == 4 * 3 * 24
    assert all(strategy[(step, layer, head)] == (5, 3, 4)  # the full steps: the whole tile grid
               for step in (0, 1) for layer in range(3) for head in range(24))

    # the searched windows reach the processors
    model = models.build("hunyuan", tiny=True)
    context = sd.enable_sta(model, strategy=(1, 1, 1), tile=(1, 2, 2))
    sd.load_strategy(model, tmp_path / "searched.json")
    try:
        sd.set_step(model, 3)
        with torch.no_grad():
            model(**models.inputs("hunyuan", model, tiny=True))
        for layer in range(3):
            assert context.windows(layer, 24) == tuple(strategy[(3, layer, h)] for h in range(24))
    finally:
        sd.disable_sta(model)


def test_capture_holds_tile_order_qkv_with_zero_holes(tmp_path):
    model = models.build("wan", tiny=True)
    capture = Capture(tmp_path, steps=[1], layers=[1], prompt="p7")
    sd.enable_sta(model, strategy=FULL, tile=(2, 2, 4), capture=capture)
    arguments = models.inputs("wan", model, tiny=True)
    try:
        with torch.no_grad():
            model(**arguments)  # step 0: not recorded
            assert capture.files == []
            model(**arguments)
    finally:
        sd.disable_sta(model)
    assert [os.path.basename(f) for f in capture.files] == ["step001_layer001_promptp7.safetensors"]
    from safetensors import safe_open

    with safe_open(capture.files[0], "pt") as file:
        metadata = file.metadata()
        q = file.get_tensor("q")
        k = file.get_tensor("k")
    assert metadata["step"] == "1" and metadata["layer"] == "1" and metadata["prompt"] == "p7"
    assert metadata["canvas"] == "5x7x9" and metadata["tile"] == "2x2x4" and metadata["text"] == "0"
    plan = sta.Plan((5, 7, 9), (2, 2, 4), windows=[(1, 1, 1)], heads=4)
    assert tuple(q.shape) == (1, 4, plan.sequence_length, 12)
    real = torch.zeros(plan.sequence_length, dtype=torch.bool)
    real[torch.tensor(plan.sequence_index().tolist())] = True
    assert (q[:, :, ~real] == 0).all() and (k[:, :, ~real] == 0).all()
    assert (q[:, :, real].abs().sum(-1) > 0).all()
    command = capture.search_command("sta", "out.json", full_steps=1)
    assert command[:8] == ["sta", "search", "--canvas", "5x7x9", "--tile", "2x2x4", "--text", "0"]
    assert command[-1] == str(tmp_path)


def test_capture_refuses_bad_prompt_ids(tmp_path):
    with pytest.raises(ValueError, match="without path separators"):
        Capture(tmp_path, prompt="a/b")
