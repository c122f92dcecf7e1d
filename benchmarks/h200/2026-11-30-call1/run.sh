#!/usr/bin/env bash
# Device call 1: the one-engine build verified (matrix, backward, benchmark layouts), the image suite against
# its baseline, the Python package's tests on the GPU (torch, custom ops, diffusers), one HunyuanVideo step.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/sta-kernels STA_LIBRARY=$PWD/.device/libsta_c.so
log=$OUT/log.txt
step() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; echo "== exit ${PIPESTATUS[0]}" | tee -a $log; }
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv | tee -a $log
S=.device/sta
step timeout 150 $S verify --json $OUT/verify.json
step timeout 90 $S verify --backward
step timeout 150 $S verify --canvas 30x48x80 --tile 6x8x8 --text 256 --window 5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1
step timeout 120 $S verify --suite wan
step timeout 60 $S verify --suite image
step timeout 60 $S bench --suite image --compare benchmarks/baselines/image.json --json $OUT/bench-image.json
step timeout 240 python3 -m pytest -q -p no:cacheprovider --timeout 120 python/tests -k "not parallel_step" -rs
step timeout 150 python3 python/examples/bench_diffusers.py --models hunyuan --modes sta,free,cudnn --output $OUT/diffusers.json --budget-s 140
