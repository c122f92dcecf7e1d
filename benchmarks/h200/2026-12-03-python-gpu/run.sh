#!/usr/bin/env bash
# One H200. The Python tests on the GPU against the current kernels (last run there on 2026-11-30, before
# Hopper forward v6–v14 and the backward's changes since): .device/libsta_c.so and .device/sta, the stripped
# release build of 26fd92a's sources (a5b7bc5; kernels as committed); diffusers 0.42.1 and importlib_metadata
# from carried wheels; torch 2.11 of the machine. The two-rank tests need two GPUs and skip here.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 185 python3 -m pytest -q -p no:cacheprovider --timeout 90 -rs --tb=short python/tests \
  -k "not parallel_step and not bench and not capture_search" > $OUT/pytest-gpu.txt 2>&1
echo "== pytest exit $?" >> $OUT/pytest-gpu.txt
tail -25 $OUT/pytest-gpu.txt
