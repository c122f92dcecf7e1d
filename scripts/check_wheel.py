"""Checks an installed `sliding-tile-attention` wheel: `import sta` finds the package and the library
inside it (not a source tree), the versions agree, and one CPU attention call matches a numpy float64
reference under the spec's mask. Run it from outside the repository with the environment's python.

    python check_wheel.py
"""

import itertools
import os
import sys

import numpy as np

import sta

package = os.path.dirname(os.path.abspath(sta.__file__))
library = sta.library_path()
print(f"sta {sta.__version__} from {package}; library {library} (C interface {sta.interface_version()}, "
      f"reports {sta.library_version()})")
assert "site-packages" in package, f"sta was imported from {package}, not from an installed wheel"
assert os.path.dirname(library) == package, f"the library {library} is not the wheel's own copy"
if sta.supports("version"):
    assert sta.library_version() == sta.__version__

# A 2-D canvas with holes, text (one padding token), two heads with different windows.
canvas, tile, text, text_valid, windows = (5, 6), (2, 4), 3, 2, [(1, 1), (3, 1)]
plan = sta.Plan(canvas=canvas, tile=tile, text=text, text_valid=text_valid, windows=windows)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((2, 2, plan.raster_length, 16)).astype(np.float32) for _ in range(3))
out_tiled, lse_tiled = sta.attention(*(plan.tile(x, dim=2) for x in (q, k, v)), plan)
out = plan.untile(out_tiled, dim=2)

# The mask of spec §2 in raster order: clamped window centres per axis, then the text rules.
grid = [-(-c // t) for c, t in zip(canvas, tile)]
positions = np.array(list(itertools.product(*[range(c) for c in canvas])))
n, s = len(positions), plan.raster_length
masks = []
for window in windows:
    video = np.ones((n, n), dtype=bool)
    for axis, size in enumerate(window):
        if size >= grid[axis]:
            continue
        r = size // 2
        tiles = positions[:, axis] // tile[axis]
        centres = np.clip(tiles, r, grid[axis] - 1 - r)
        video &= np.abs(centres[:, None] - tiles[None, :]) <= r
    mask = np.zeros((s, s), dtype=bool)
    mask[:n, :n] = video
    mask[:n, n:n + text_valid] = True
    mask[n:n + text_valid, :n + text_valid] = True
    masks.append(mask)
scores = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(16)
scores = np.where(np.stack(masks)[None], scores, -np.inf)
real = np.arange(s) < n + text_valid
weights = np.exp(scores[:, :, real] - scores[:, :, real].max(-1, keepdims=True))
expected = np.einsum("bhqk,bhkd->bhqd", weights / weights.sum(-1, keepdims=True), v.astype(np.float64))
error = np.linalg.norm(out[:, :, real] - expected) / np.linalg.norm(expected)
print(f"CPU attention against the float64 reference: relative error {error:.2e}")
assert error < 1e-4, error
assert np.all(out[:, :, ~real] == 0), "padding text rows must be zero"

# Where torch and a GPU are present (the GPU machine): the CUDA kernels through the installed package,
# NVRTC found inside the installed nvidia wheel, forward and backward against the CPU path.
try:
    import torch
except ImportError:
    torch = None
if torch is not None and torch.cuda.is_available():
    gpu_plan = sta.Plan(canvas=(6, 8, 16), tile=(4, 4, 8), text=40, windows=[(1, 1, 1), (1, 3, 1)])
    generator = torch.Generator().manual_seed(0)
    shape = (2, 2, gpu_plan.sequence_length, 64)
    host = [torch.randn(shape, generator=generator).to(torch.bfloat16) for _ in range(3)]
    valid = [7, 40]
    results = []
    for device in ("cuda", "cpu"):
        leaves = [x.to(device).float().to(torch.bfloat16 if device == "cuda" else torch.float32).requires_grad_()
                  for x in host]
        text_valid = torch.tensor(valid, dtype=torch.int32, device=device)
        out, _ = sta.attention(*leaves, gpu_plan, text_valid=text_valid)
        out.float().sum().backward()
        results.append([out.detach().float().cpu()] + [x.grad.float().cpu() for x in leaves])
    for name, got, want in zip(("out", "dq", "dk", "dv"), *results):
        error = ((got - want).norm() / want.norm()).item()
        print(f"CUDA {name} against the CPU path: relative error {error:.2e}")
        assert error < 1e-2, (name, error)
    print(f"NVRTC: {os.environ.get('STA_NVRTC_PATH', '(found by the library)')}")
print("wheel check passed")
sys.exit(0)
