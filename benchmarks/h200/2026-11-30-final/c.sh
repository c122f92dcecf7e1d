#!/usr/bin/env bash
# Final lease, command C (after A): the verify matrix and the backward run to completion (A's limits were
# too short), FLUX with the bf16 image-ids fix, the Python tests A found failing, then one HunyuanVideo
# denoising step on one GPU and on two with Ulysses context parallelism over NCCL.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p -m 700 /tmp/k0 /tmp/k1
S=.device/sta
(
  export CUDA_VISIBLE_DEVICES=0 STA_KERNEL_CACHE=/tmp/k0
  timeout 200 $S verify --json > $OUT/verify.json 2> $OUT/log-verify.txt; echo "== verify exit $?" >> $OUT/log-verify.txt
  timeout 90 python3 python/examples/bench_diffusers.py --models flux --modes sta,free,cudnn --output $OUT/diffusers-flux.json --budget-s 70 > $OUT/log-flux.txt 2>&1; echo "== flux exit $?" >> $OUT/log-flux.txt
) &
(
  export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=/tmp/k1
  timeout 240 $S verify --backward > $OUT/log-backward.txt 2>&1; echo "== backward exit $?" >> $OUT/log-backward.txt
  timeout 80 python3 -m pytest -q -p no:cacheprovider --timeout 60 -rs --tb=short python/tests/test_parallel.py python/tests/test_torch.py python/tests/test_diffusers.py > $OUT/pytest-rerun.txt 2>&1; echo "== pytest exit $?" >> $OUT/pytest-rerun.txt
) &
wait
export STA_KERNEL_CACHE=/tmp/k0
log=$OUT/log-parallel.txt
R=python/examples/parallel_step.py
timeout 110 torchrun --standalone --nproc-per-node 1 $R --model hunyuan --steps 2 --json $OUT/parallel.json --save-output /tmp/hunyuan1.pt >> $log 2>&1; echo "== 1 GPU exit $?" >> $log
timeout 120 torchrun --standalone --nproc-per-node 2 $R --model hunyuan --steps 2 --json $OUT/parallel.json --baseline $OUT/parallel.json --check-attention >> $log 2>&1; echo "== 2 GPUs exit $?" >> $log
tail -3 $OUT/log-verify.txt; tail -4 $OUT/log-backward.txt; tail -3 $OUT/log-flux.txt; tail -6 $OUT/pytest-rerun.txt; grep -E "RESULT|speedup|error|Error|exit" $log | tail -12
