#!/usr/bin/env bash
# Two H200s. Phase 1, side by side: GPU 0 times the portable kernel on the hunyuan suite beside cuDNN and
# FlashAttention-2 dense (torch_anchors.py); GPU 1 times diffusers' own attention ("default" rows) for
# HunyuanVideo, Wan 2.1 and FLUX. Phase 2: one HunyuanVideo and one Wan denoising step on one GPU, then on
# two with Ulysses context parallelism for several head-chunk counts (the overlap of exchange and attention).
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p -m 700 /tmp/k0 /tmp/k1
nvidia-smi --query-gpu=index,name,clocks.sm,temperature.gpu --format=csv > $OUT/log-gpu0.txt
S=.device/sta
(
  export CUDA_VISIBLE_DEVICES=0 STA_KERNEL_CACHE=/tmp/k0
  log=$OUT/log-gpu0.txt
  timeout 150 $S bench --suite hunyuan --kernel portable --json > $OUT/bench-hunyuan-portable.json 2>> $log; echo "== bench exit $?" >> $log
  timeout 120 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --windows 3x3x3 --dense --reps 5 >> $log 2>&1; echo "== anchors exit $?" >> $log
) &
(
  export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=/tmp/k1
  timeout 190 python3 python/examples/bench_diffusers.py --models hunyuan,wan,flux --modes default --output $OUT/diffusers-default.json --budget-s 160 > $OUT/log-default.txt 2>&1; echo "== default exit $?" >> $OUT/log-default.txt
) &
wait
export STA_KERNEL_CACHE=/tmp/k0
log=$OUT/log-parallel.txt
R=python/examples/parallel_step.py
for m in hunyuan wan; do
  timeout 85 torchrun --standalone --nproc-per-node 1 $R --model $m --steps 2 --json $OUT/parallel-$m.json >> $log 2>&1; echo "== $m 1 GPU exit $?" >> $log
  for c in 2 4 6; do
    [ $m = wan ] && [ $c = 6 ] && continue
    timeout 85 torchrun --standalone --nproc-per-node 2 $R --model $m --steps 2 --head-chunks $c --json $OUT/parallel-$m.json --baseline $OUT/parallel-$m.json >> $log 2>&1; echo "== $m 2 GPUs head_chunks $c exit $?" >> $log
  done
done
grep -h "== \|REGRESSION" $OUT/log-gpu0.txt; grep -E "FA2|cuDNN|flash|dense" $OUT/log-gpu0.txt | tail -8; tail -12 $OUT/log-default.txt
grep -E "RESULT|Error|exit" $log | tail -16
