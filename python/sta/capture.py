"""Recording a model's q, k, v for the window search (``sta search``).

    from sta.capture import Capture
    import sta.diffusers

    capture = Capture("captures/", steps=range(15, 50), layers=None, prompt="0")
    sta.diffusers.enable_sta(pipe, strategy=FULL, capture=capture)   # full attention while recording
    pipe(prompt, num_inference_steps=50)
    print(" ".join(capture.search_command("sta", "strategy.json")))   # the matching `sta search` call
    sta.diffusers.set_strategy(pipe, "strategy.json")                # apply what the search wrote

One ``.safetensors`` file per (step, layer) call, in the format ``sta search`` reads: tensors ``q``, ``k``,
``v`` of shape [B, H, S', D] (the model's dtype), where S' is the plan's sequence length — the video
tokens in tile-contiguous order with holes (zero) where the tile does not divide the canvas, then the
text tokens — after the rotary embedding, exactly what the kernel receives; metadata ``step``, ``layer``,
``prompt`` (strings), plus ``canvas``, ``tile``, ``text`` and ``text_valid`` for the record.

Cost: each recorded call copies q, k, v to the host and writes 3·B·H·S'·D elements (HunyuanVideo 720p
bf16: 2.1 GB per (step, layer)); the copy synchronises the device. Choose steps and layers accordingly.
"""

from __future__ import annotations

import os
from typing import Iterable

__all__ = ["Capture"]


class Capture:
    """Records tile-order q, k, v of the chosen ``steps`` and ``layers`` (None: all) into ``directory``."""

    def __init__(self, directory: str | os.PathLike, *, steps: Iterable[int] | None = None,
                 layers: Iterable[int] | None = None, prompt: str = "0", limit: int | None = None):
        prompt = str(prompt)
        if not prompt or any(c in prompt for c in "/\\\0"):
            raise ValueError(f"prompt id {prompt!r} must be a non-empty name without path separators")
        self.directory = os.fspath(directory)
        self.steps = None if steps is None else {int(s) for s in steps}
        self.layers = None if layers is None else {int(layer) for layer in layers}
        self.prompt = prompt
        self.limit = limit
        self.files: list[str] = []
        self.layouts: set[tuple] = set()
        os.makedirs(self.directory, exist_ok=True)

    def wants(self, step: int | None, layer: int) -> bool:
        if step is None or (self.limit is not None and len(self.files) >= self.limit):
            return False
        return (self.steps is None or step in self.steps) and (self.layers is None or layer in self.layers)

    def path(self, step: int, layer: int) -> str:
        return os.path.join(self.directory, f"step{step:03d}_layer{layer:03d}_prompt{self.prompt}.safetensors")

    def save(self, context, layer: int, q, k, v, *, layout, text_valid=None) -> str:
        """Writes one capture; q, k, v are [B, H, S', D] in tile order (holes are zeroed in the copy)."""
        from safetensors.torch import save_file

        tensors = {}
        holes = layout.holes() if layout.has_holes else None
        for name, x in (("q", q), ("k", k), ("v", v)):
            x = x.detach()
            if holes is not None:
                x = x.index_fill(2, holes, 0)
            tensors[name] = x.contiguous().cpu()
        valid = layout.text if text_valid is None else ",".join(str(int(n)) for n in text_valid.tolist())
        metadata = {
            "step": str(int(context.step)), "layer": str(int(layer)), "prompt": self.prompt,
            "canvas": "x".join(map(str, layout.canvas)), "tile": "x".join(map(str, layout.tile)),
            "text": str(layout.text), "text_valid": str(valid),
        }
        path = self.path(int(context.step), int(layer))
        save_file(tensors, path, metadata=metadata)
        self.files.append(path)
        self.layouts.add((layout.canvas, layout.tile, layout.text, str(valid)))
        return path

    def search_command(self, executable: str, output: str, *, full_steps: int = 0,
                       extra: Iterable[str] = ()) -> list[str]:
        """The ``sta search`` argument list for the captures written so far (they must share one canvas,
        tile, text count and valid text length)."""
        if not self.files:
            raise ValueError("nothing was captured: no recorded step and layer ran")
        if len(self.layouts) != 1:
            raise ValueError(f"the captures have {len(self.layouts)} different layouts or text lengths "
                             f"{sorted(self.layouts)}; `sta search` takes one: capture them into separate folders")
        canvas, tile, text, valid = next(iter(self.layouts))
        if "," in valid:
            lengths = sorted({int(n) for n in valid.split(",")})
            if len(lengths) != 1:
                raise ValueError(f"the captured batch rows have text lengths {lengths}; `sta search` takes one "
                                 "--text-valid: capture one prompt length per folder")
            valid = str(lengths[0])
        command = [executable, "search", "--canvas", "x".join(map(str, canvas)), "--tile", "x".join(map(str, tile)),
                   "--text", str(text), "--full-steps", str(int(full_steps)), "--output", os.fspath(output)]
        if text:
            command += ["--text-valid", valid]
        return command + list(extra) + [self.directory]
