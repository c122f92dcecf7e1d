#!/usr/bin/env bash
# One H200, one call: the stripped release build of this tree (.device/sta, the kernels embedded: Hopper
# forward v14 and its backward; the portable kernels in the per-head visit order, N). The SM clock and
# power sampled every 100 ms (clocks.csv). First the timings, alone on the card:
#  1. the forward suites on the Hopper kernel against the committed baselines (--compare), the hunyuan
#     suite on the portable kernel, the hunyuan backward on the Hopper kernel against its baseline, and
#     torch_anchors.py's forward peers for the hunyuan layout (FlexAttention-STA, cuDNN and
#     FlashAttention-2 dense) and the wan layout;
#  2. the portable kernels' A/B (../2026-12-03-portable-order): N against O = the same sources with the
#     portable tiles in row-major order (STA_KERNEL_SOURCES=.device/O), alternating, median of 10 each.
# Then the checks, side by side: `sta verify --suite` on the three suites' layouts, every GPU kernel
# (Hopper and portable), forward and backward; the matrix on the portable kernel forward and backward
# (its order changed); the matrix's per-row text backward cases on the Hopper kernel.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc /tmp/res
N=$PWD/.device/sta
t0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
SMI=$!
for s in hunyuan wan image; do
  timeout 150 $N bench --suite $s --kernel hopper --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
timeout 100 $N bench --suite hunyuan --kernel portable --json > $OUT/bench-hunyuan-portable.json 2>> $OUT/log.txt
echo "bench hunyuan portable exit $?" | tee -a $OUT/summary.txt
timeout 150 $N bench --suite hunyuan --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward.json 2>> $OUT/log.txt; echo "bench hunyuan backward compare exit $?" | tee -a $OUT/summary.txt
{ timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
grep -h "exit" $OUT/anchors.txt
for s in hunyuan wan image hunyuan-portable hunyuan-backward; do python3 scripts/bench_lines.py F $OUT/bench-$s.json; done | tee -a $OUT/summary.txt
echo "suites done at $(( $(date +%s) - t0 )) s" | tee -a $OUT/summary.txt

one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != N ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 60 $N bench "$@" --json \
    > /tmp/$tag.json 2>> /tmp/res/ab-log.txt
  python3 scripts/bench_lines.py $tag /tmp/$tag.json | tee -a $OUT/ab-summary.txt
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in N O O N; do one $tag --suite hunyuan --kernel portable --only 3x3x3; one $tag --suite hunyuan --kernel portable --only 5x5x5; done
for tag in N O; do one $tag --suite wan --kernel portable --only 3x3x3; done
for tag in N O O N; do one $tag --suite hunyuan --kernel portable --backward --only 3x3x3; done
kill $SMI
echo "A/B done at $(( $(date +%s) - t0 )) s" | tee -a $OUT/summary.txt

check() {  # tag, verify's arguments
  local tag=$1; shift
  mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout $(( 575 - ($(date +%s) - t0) )) $N verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" >> /tmp/res/checks.txt
}
for s in hunyuan wan image; do
  check $s --suite $s --kernel all &
  check $s-backward --suite $s --kernel all --backward &
done
check portable-matrix --kernel portable & check portable-matrix-backward --kernel portable --backward &
check rows-backward --kernel hopper --backward --only rows &
wait
sort /tmp/res/checks.txt | tee -a $OUT/summary.txt
echo "checks done at $(( $(date +%s) - t0 )) s" | tee -a $OUT/summary.txt
tar czf $OUT/results.tgz -C /tmp res
