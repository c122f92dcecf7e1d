#!/usr/bin/env bash
# Two H200s, after merging the Hopper backward, the exact-rows kernels, the device-resident search, the
# sampled backward check and the portable kernel's two row blocks per warp.
#   GPU 0 (timings alone on it): the hunyuan suite on both forward kernels against the committed baseline,
#     torch_anchors.py (cuDNN, FlashAttention-2, FlexAttention) in the same call, the training step.
#   GPU 1 (checks, two processes side by side): the verify matrix forward and backward on every kernel;
#     the GPU window search against the CPU one, then STA's gradients against FlexAttention and float64.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta
mkdir -p -m 700 /tmp/k0 /tmp/k1 /tmp/k2
nvidia-smi --query-gpu=index,name,clocks.sm,temperature.gpu --format=csv > $OUT/log-gpu0.txt
S=.device/sta
step() { local log=$1; shift; echo "== $*" >> $log; "$@" >> $log 2>&1; echo "== exit $?" >> $log; }
gpu0() {
  export CUDA_VISIBLE_DEVICES=0 STA_KERNEL_CACHE=/tmp/k0
  local log=$OUT/log-gpu0.txt
  echo "== bench hunyuan" >> $log
  timeout 120 $S bench --suite hunyuan --kernel all --json --compare benchmarks/baselines/hunyuan.json > $OUT/bench-hunyuan.json 2>> $log; echo "== exit $?" >> $log
  step $log timeout 100 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --windows 3x3x3 --dense --reps 5
  step $log timeout 330 python3 python/examples/bench_training.py --steps 3 --warmup 1 --output $OUT/training.json
}
gpu1a() {
  export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=/tmp/k1
  local log=$OUT/log-verify.txt
  step $log timeout 200 $S verify --kernel all
  step $log timeout 340 $S verify --backward --kernel all
}
gpu1b() {
  export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=/tmp/k2
  local log=$OUT/log-checks.txt
  step $log timeout 170 python3 scripts/search_check.py --sta $STA_BINARY
  step $log timeout 260 python3 python/examples/gradients_vs_flex.py --output $OUT/gradients.json
  step $log timeout 80 python3 -m pytest -q -p no:cacheprovider -x --timeout 70 -rs --tb=short python/tests/test_ops.py -k cuda
}
gpu0 & gpu1a & gpu1b & wait
grep -h "REGRESSION\|== \|ms\b" $OUT/log-gpu0.txt | tail -30
grep -h "passed, \|FAIL\|== " $OUT/log-verify.txt | tail -20
grep -h "passed\|PASS\|FAIL\|== \|rel" $OUT/log-checks.txt | tail -30
