"""The torch paths: CPU tensors through the library, the device permutation (scatter/gather) against
the library's, and, on a CUDA machine, the GPU kernels against the CPU path. Skipped without torch."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

torch = pytest.importorskip("torch")

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)


def make_plan():
    return sta.Plan(canvas=(6, 16, 16), tile=(2, 8, 8), text=64, text_valid=50,
                    windows=[(1, 1, 1), (3, 1, 1)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cpu_tensors_match_numpy(dtype):
    plan = make_plan()
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, plan.raster_length, 64, generator=generator).to(dtype) for _ in range(3))
    tiled = [plan.tile(x, dim=2) for x in (q, k, v)]
    out, lse = sta.attention(*tiled, plan)
    assert out.dtype == dtype and lse.dtype == torch.float32
    reference, reference_lse = sta.attention(*[t.float().numpy() for t in tiled], plan)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2
    real = torch.from_numpy(np.isfinite(reference_lse))
    difference = (out.float() - torch.from_numpy(reference))[real.unsqueeze(-1).expand_as(out)]
    assert difference.norm() / torch.from_numpy(reference)[real.unsqueeze(-1).expand_as(out)].norm() < tolerance
    assert torch.equal(plan.untile(plan.tile(q, dim=2), dim=2), q)


@pytest.mark.parametrize("dim", [1, 2])
def test_device_permutation_equals_the_library_one(dim):
    plan = make_plan()
    shape = [2, 3, 3, 8]
    shape[dim] = plan.raster_length
    x = torch.randn(*shape)
    by_library = plan.tile(x, dim=dim)
    by_scatter = plan._permute_torch_device(x, dim, True, list(by_library.shape))
    assert torch.equal(by_library, by_scatter)
    back = plan._permute_torch_device(by_scatter, dim, False, list(x.shape))
    assert torch.equal(back, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kernel", ["auto", "portable"])
def test_cuda_matches_cpu(dtype, kernel):
    plan = make_plan()
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, plan.raster_length, 64, generator=generator).to(dtype) for _ in range(3))
    tiled_cpu = [plan.tile(x, dim=2) for x in (q, k, v)]
    tiled_gpu = [plan.tile(x.cuda(), dim=2) for x in (q, k, v)]
    for a, b in zip(tiled_cpu, tiled_gpu):
        assert torch.equal(a, b.cpu())
    out, lse = sta.attention(*tiled_gpu, plan, kernel=kernel)
    torch.cuda.synchronize()
    reference, reference_lse = sta.attention(*[t.float() for t in tiled_cpu], plan)
    real = torch.isfinite(reference_lse)
    assert torch.equal(torch.isfinite(lse.cpu()), real)
    rows = real.unsqueeze(-1).expand_as(reference)
    error = (out.cpu().float() - reference)[rows].norm() / reference[rows].norm()
    assert error < (1e-2 if dtype == torch.bfloat16 else 3e-3)
    assert (lse.cpu() - reference_lse)[real].abs().max() < 1e-3
