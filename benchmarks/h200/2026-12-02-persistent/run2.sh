#!/usr/bin/env bash
# One H200. N = .device/sta, the stripped release build of the working tree (Hopper forward v10: a
# persistent grid of one CTA per multiprocessor taking units from a per-stream work counter; the producer
# split into a scheduler thread and a copy thread; the next unit's query block and first chunks load while
# the consumers finish the current one; O stored from registers). A = .device/sta-A, the release build of
# HEAD dda2c2a (v9). First a smoke check of N (if it fails or hangs, no timing is taken). Timings
# alternate A and N (A N N A, median of 10 each, 2 s idle before each problem): the hunyuan, wan and
# image suites on the Hopper kernel; then torch_anchors.py's FlexAttention-STA figures for the hunyuan and
# wan layouts. Then N's
# checks side by side: the forward matrix on the Hopper kernel in ten groups, the three suites' layouts,
# and the matrix again with 3 CTAs (STA_PERSISTENT_CTAS), so that every CTA computes many units.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
N=$PWD/.device/sta
A=$PWD/.device/sta-A
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p -m 700 /tmp/kc-smoke
STA_KERNEL_CACHE=/tmp/kc-smoke timeout 90 $N verify --kernel hopper --only "text 50/64" > $OUT/smoke.txt 2>&1
rc=$?; echo "smoke exit $rc: $(tail -1 $OUT/smoke.txt)" | tee -a $OUT/summary.txt
[ $rc = 0 ] || { cat $OUT/smoke.txt | tail -20; exit 1; }
one() { # tag, bench arguments...
  local tag=$1; shift
  local bin=$N; [ $tag = A ] && bin=$A
  mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag timeout 120 $bin bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json $OUT/bench-$tag-$(date +%s%N).json
}
for tag in A N N A; do
  one $tag --suite hunyuan --kernel hopper
  one $tag --suite wan --kernel hopper
  one $tag --suite image --kernel hopper
done
{ timeout 100 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
grep -h "exit" $OUT/anchors.txt
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 $N verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel hopper & done
wait
# The small layouts have fewer units than multiprocessors: again with 3 CTAs, each computing many units
# (hole blocks, packed and 64-row blocks, text and video units in one CTA).
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  (export STA_PERSISTENT_CTAS=3; check few-ctas-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only") &
done
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /' | tee -a $OUT/summary.txt
grep -h ": pass" /tmp/v/verify-few-ctas-*.txt | wc -l | sed 's/^/forward cases passed with 3 CTAs: /' | tee -a $OUT/summary.txt
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head | tee -a $OUT/summary.txt
tar czf $OUT/verify.tgz -C /tmp/v .
(cd $OUT && tar czf results.tgz bench-*.json && rm bench-*.json)
