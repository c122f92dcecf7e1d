#!/usr/bin/env bash
# Final lease, command A (one H200 of the two): verify every kernel (matrix, backward, the benchmark layouts
# on sampled rows), every suite against its baseline, FlexAttention in the same call, Python tests on the GPU.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/sta-kernels STA_LIBRARY=$PWD/.device/libsta_c.so CUDA_VISIBLE_DEVICES=0
log=$OUT/log-a.txt
step() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; echo "== exit ${PIPESTATUS[0]}" | tee -a $log; }
json() { local f=$1; shift; echo "== $* > $f" | tee -a $log; "$@" > $OUT/$f 2>>$log; echo "== exit $?" | tee -a $log; }
mkdir -p /tmp/sta-kernels && chmod 700 /tmp/sta-kernels
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv | tee -a $log
S=.device/sta
step timeout 120 $S verify
step timeout 100 $S verify --backward
step timeout 100 $S verify --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --window 5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1
step timeout 80 $S verify --suite wan
step timeout 40 $S verify --suite image
for s in hunyuan wan image; do
  k=hopper; [ $s = image ] && k=all
  json bench-$s.json timeout 100 $S bench --suite $s --kernel $k --json --compare benchmarks/baselines/$s.json
done
step timeout 100 python3 ../shared/anchors/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --windows 3x3x3 --reps 5
( timeout 150 python3 -m pytest -q -p no:cacheprovider --timeout 60 -rs --tb=short python/tests -k "not parallel_step and not bench" > $OUT/pytest-gpu.txt 2>&1; echo "== pytest exit $?" >> $OUT/pytest-gpu.txt )
tail -30 $OUT/pytest-gpu.txt
grep -h "REGRESSION\|ratio" $log | head -20
