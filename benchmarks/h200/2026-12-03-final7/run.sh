#!/usr/bin/env bash
# One H200, the stripped release build of this tree (.device/sta, the kernels embedded: Hopper forward v13,
# the visit order). The SM clock and power sampled every 100 ms (clocks.csv). Timings: the forward suites
# on the Hopper kernel against the committed baselines (--compare), the hunyuan backward on the Hopper
# kernel against its baseline; torch_anchors.py's forward peers for the hunyuan layout (FlexAttention-STA,
# cuDNN and FlashAttention-2 dense) and the wan layout. The same kernel sources passed `sta verify` on the
# hunyuan and wan layouts, the matrix cases whose order changed and 56 drawn problems in
# `2026-12-03-visit-order`.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
SMI=$!
for s in hunyuan wan image; do
  timeout 150 $N bench --suite $s --kernel hopper --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
timeout 150 $N bench --suite hunyuan --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward.json 2>> $OUT/log.txt; echo "bench hunyuan backward compare exit $?" | tee -a $OUT/summary.txt
{ timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
kill $SMI
grep -h "exit" $OUT/anchors.txt
for s in hunyuan wan image hunyuan-backward; do python3 scripts/bench_lines.py F $OUT/bench-$s.json; done | tee -a $OUT/summary.txt
