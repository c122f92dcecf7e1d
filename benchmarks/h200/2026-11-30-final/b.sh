#!/usr/bin/env bash
# Final lease, command B: one HunyuanVideo denoising step (13B architecture, random bf16 weights, STA 3×3×3)
# on one GPU and on two with Ulysses context parallelism over NCCL; outputs compared.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_KERNEL_CACHE=/tmp/k0
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p -m 700 /tmp/k0
log=$OUT/log-parallel.txt
step() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; echo "== exit ${PIPESTATUS[0]}" | tee -a $log; }
R=python/examples/parallel_step.py
step timeout 130 torchrun --standalone --nproc-per-node 1 $R --model hunyuan --steps 2 --json $OUT/parallel.json --save-output /tmp/hunyuan1.pt
step timeout 150 torchrun --standalone --nproc-per-node 2 $R --model hunyuan --steps 2 --json $OUT/parallel.json --baseline $OUT/parallel.json --check-attention
