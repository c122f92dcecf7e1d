"""sta.h against the library and the ctypes signatures: every declared function is exported and bound,
and a C program compiled against the header runs the CPU path (skipped without a C compiler)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import sta  # noqa: E402
from sta import _library  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

HEADER = os.path.join(ROOT, "Sources", "STACInterface", "include", "sta.h")
# A function declaration: its return type, its name, its parameter list.
DECLARATION = r"(?:int32_t|sta_plan\s*\*|const char\s*\*)\s*{name}\s*\("


def declared_functions() -> set[str]:
    text = open(HEADER, encoding="utf-8").read()
    return set(re.findall(DECLARATION.format(name=r"(sta_[a-z_0-9]+)"), text))


def test_header_declares_exactly_the_bound_functions():
    declared = declared_functions()
    assert declared == set(_library._SIGNATURES), declared ^ set(_library._SIGNATURES)
    for name in declared:
        assert hasattr(sta.library(), name), f"{name} is declared in sta.h but not exported"


def test_header_parameter_counts_match_ctypes():
    text = open(HEADER, encoding="utf-8").read()
    for name, (_, argtypes) in _library._SIGNATURES.items():
        match = re.search(DECLARATION.format(name=name) + r"([^)]*)\)", text)
        assert match, name
        parameters = [p for p in match.group(1).split(",") if p.strip() and p.strip() != "void"]
        assert len(parameters) == len(argtypes), f"{name}: header {len(parameters)}, ctypes {len(argtypes)}"


C_PROGRAM = r"""
#include "sta.h"
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    char error[512];
    int64_t canvas[3] = {5, 6, 7}, tile[3] = {2, 4, 4}, windows[3] = {3, 3, 3};
    sta_plan *plan = sta_plan_create(3, canvas, tile, 3, -1, 1, windows, error, sizeof error);
    if (!plan) { printf("create: %s\n", error); return 1; }
    int64_t s = 0, raster = 0;
    if (sta_plan_sequence_length(plan, &s, error, sizeof error) != STA_OK) return 2;
    if (sta_plan_shape(plan, NULL, NULL, NULL, NULL, NULL, &raster, NULL, error, sizeof error) != STA_OK) return 3;
    float *x = calloc((size_t)s * 8, 4), *y = calloc((size_t)s * 8, 4);
    float *o = calloc((size_t)s * 8, 4), *lse = calloc((size_t)s, 4);
    for (int64_t i = 0; i < raster * 8; i++) x[i] = (float)(i % 17) / 17.0f;
    if (sta_tile(plan, x, y, 1, 8 * 4, error, sizeof error) != STA_OK) return 4;
    if (sta_forward_cpu(plan, STA_DTYPE_FLOAT32, 1, 8, y, y, y, o, lse, 0.0, NULL, 0, error, sizeof error) != STA_OK)
        return 5;
    if (sta_forward_cpu(plan, 9, 1, 8, y, y, y, o, lse, 0.0, NULL, 0, error, sizeof error) != STA_ERROR_INVALID_ARGUMENT)
        return 6;
    printf("S=%lld lse0=%.6f\n", (long long)s, lse[0]);
    return sta_plan_destroy(plan, error, sizeof error) == STA_OK ? 0 : 7;
}
"""


def c_compiler():
    for candidate in (os.environ.get("CC"), "cc", "clang", "gcc", "/opt/swift/usr/bin/clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def test_c_program_against_the_header(tmp_path):
    compiler = c_compiler()
    if compiler is None:
        pytest.skip("no C compiler")
    source = tmp_path / "main.c"
    source.write_text(C_PROGRAM)
    library = sta.library_path()
    binary = tmp_path / "main"
    build = subprocess.run(
        [compiler, "-std=c99", "-Wall", "-Werror", "-I", os.path.dirname(HEADER), str(source), library,
         f"-Wl,-rpath,{os.path.dirname(library)}", "-o", str(binary)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    # The same plan and inputs through Python give the same first log-sum-exp.
    import numpy as np

    plan = sta.Plan(canvas=(5, 6, 7), tile=(2, 4, 4), text=3, windows=[(3, 3, 3)])
    x = (np.arange(plan.raster_length * 8) % 17 / 17).astype(np.float32).reshape(1, 1, plan.raster_length, 8)
    y = plan.tile(x, dim=2)
    _, lse = sta.attention(y, y, y, plan)
    assert f"S={plan.sequence_length} lse0={lse[0, 0, 0]:.6f}" in run.stdout
