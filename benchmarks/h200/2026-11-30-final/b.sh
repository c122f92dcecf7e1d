#!/usr/bin/env bash
# Final lease, command B: one denoising step of HunyuanVideo, FLUX and Wan with STA against diffusers'
# attentions (one GPU), then HunyuanVideo on one and two GPUs with Ulysses context parallelism.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/sta-kernels STA_LIBRARY=$PWD/.device/libsta_c.so
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log=$OUT/log-b.txt
step() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; echo "== exit ${PIPESTATUS[0]}" | tee -a $log; }
mkdir -p /tmp/sta-kernels && chmod 700 /tmp/sta-kernels
step timeout 300 env CUDA_VISIBLE_DEVICES=0 python3 python/examples/bench_diffusers.py --models hunyuan,flux,wan --modes sta,free,cudnn,mixed,full15 --output $OUT/diffusers.json --log $OUT/diffusers.log --budget-s 280
R=python/examples/parallel_step.py
step timeout 100 torchrun --standalone --nproc-per-node 1 $R --model hunyuan --steps 2 --json $OUT/parallel.json --save-output /tmp/hunyuan1.pt
step timeout 110 torchrun --standalone --nproc-per-node 2 $R --model hunyuan --steps 2 --json $OUT/parallel.json --baseline $OUT/parallel.json --check-attention
