#!/usr/bin/env bash
# One H200, the first tree of 2026-12-01 (the verification fixes of 2026-11-30 not yet run on a GPU).
#   Phase 1, three processes side by side: the verify matrix forward (every kernel), backward on the
#     portable kernels and backward on the Hopper kernel.
#   Phase 2, timings alone on the GPU: the backward of the wan and image suites on both kernels, and
#     FlexAttention's backward on the wan 3x3x3 layout (torch_anchors.py --backward) in the same call.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
mkdir -p -m 700 /tmp/k1 /tmp/k2 /tmp/k3 /tmp/k4
nvidia-smi --query-gpu=index,name,clocks.sm,temperature.gpu --format=csv > $OUT/log-gpu.txt
S=.device/sta
check() { local log=$OUT/log-$1.txt; shift; export STA_KERNEL_CACHE=$1; shift
  echo "== $*" >> $log; timeout 330 "$@" >> $log 2>&1; echo "== exit $?" >> $log; }
check verify /tmp/k1 $S verify --kernel all &
check backward-portable /tmp/k2 $S verify --backward --kernel portable &
check backward-hopper /tmp/k3 $S verify --backward --kernel hopper &
wait
export STA_KERNEL_CACHE=/tmp/k4
for suite in wan image; do
  echo "== bench --backward --suite $suite" >> $OUT/log-gpu.txt
  timeout 100 $S bench --backward --suite $suite --kernel all --json > $OUT/bench-backward-$suite.json 2>> $OUT/log-gpu.txt
  echo "== exit $?" >> $OUT/log-gpu.txt
done
echo "== torch_anchors wan 3x3x3 --backward" >> $OUT/log-gpu.txt
timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 --windows 3x3x3 --backward > $OUT/anchors-wan-backward.txt 2>&1
echo "== exit $?" >> $OUT/log-gpu.txt
for f in verify backward-portable backward-hopper; do echo "## $f"; grep -h "passed, \|FAIL\|== " $OUT/log-$f.txt | tail -10; done
grep -h "== \|backward" $OUT/log-gpu.txt | tail -12; tail -8 $OUT/anchors-wan-backward.txt
