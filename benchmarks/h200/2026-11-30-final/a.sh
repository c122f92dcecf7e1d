#!/usr/bin/env bash
# Final lease, command A, two H200s side by side:
#   GPU 0: verify every kernel (matrix, per-row text, backward, the benchmark layouts on sampled rows),
#          every suite against its baseline, FlexAttention/cuDNN (torch_anchors.py) in the same call;
#   GPU 1: the Python package's tests on the GPU, then one denoising step of HunyuanVideo, FLUX and Wan.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p -m 700 /tmp/k0 /tmp/k1
nvidia-smi --query-gpu=index,name,clocks.sm,temperature.gpu --format=csv | tee $OUT/log-gpu0.txt
S=.device/sta
gpu0() {
  export CUDA_VISIBLE_DEVICES=0 STA_KERNEL_CACHE=/tmp/k0
  log=$OUT/log-gpu0.txt
  step() { echo "== $*" >> $log; "$@" >> $log 2>&1; echo "== exit $?" >> $log; }
  step timeout 120 $S verify
  step timeout 100 $S verify --backward
  step timeout 90 $S verify --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --window 5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1
  step timeout 90 $S verify --canvas 21x45x80 --tile 6x8x8 --heads 40 --window 3x5x5
  step timeout 40 $S verify --suite image
  for s in hunyuan wan image; do
    k=hopper; [ $s = image ] && k=all
    echo "== bench $s" >> $log
    timeout 100 $S bench --suite $s --kernel $k --json --compare benchmarks/baselines/$s.json > $OUT/bench-$s.json 2>> $log
    echo "== exit $?" >> $log
  done
  step timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --windows 3x3x3 --dense --reps 5
}
gpu1() {
  export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=/tmp/k1
  log=$OUT/log-gpu1.txt
  timeout 190 python3 -m pytest -q -p no:cacheprovider --timeout 90 -rs --tb=short python/tests -k "not parallel_step and not bench and not capture_search" > $OUT/pytest-gpu.txt 2>&1; echo "== pytest exit $?" >> $OUT/pytest-gpu.txt
  echo "== bench_diffusers" >> $log
  timeout 360 python3 python/examples/bench_diffusers.py --models hunyuan,flux,wan --modes sta,free,cudnn,mixed,full15 --output $OUT/diffusers.json --log $log --budget-s 300 >> $log 2>&1
  echo "== exit $?" >> $log
}
gpu0 & gpu1 & wait
grep -h "passed, \|REGRESSION\|== exit\|^== " $OUT/log-gpu0.txt | tail -40
tail -15 $OUT/pytest-gpu.txt
tail -25 $OUT/log-gpu1.txt
