#!/usr/bin/env bash
# One H200, the stripped release build of 5887506 (.device/sta; its embedded kernels are A). c15
# (.device/c15 = A with c1.patch then c15.patch: the last reduction awaited until read, and dK and dV
# staged in the free K and V buffers and written in 16-byte pieces, the epilogue's row loop unrolled with
# a guard, which leaves the main loop's SASS as A's) against A, alternating, median of 10; c15's hunyuan
# backward suite against the committed baseline and FlexAttention's backward in the same call; c15's
# checks (the backward matrix in ten groups, the three suites' layouts).
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p /tmp/res2
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 150 .device/sta bench "$@" --json > /tmp/$tag.json 2>> /tmp/res2/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary2.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res2/bench-$tag-$(date +%s%N).json
}
for tag in A c15 c15 A A c15; do one $tag --suite hunyuan --kernel hopper --backward --only 3x3x3; done
for tag in A c15 c15 A; do one $tag --suite image --kernel hopper --backward; one $tag --suite wan --kernel hopper --backward --only 3x3x3; done
STA_KERNEL_SOURCES=$PWD/.device/c15 STA_KERNEL_CACHE=/tmp/kc-c15 timeout 150 .device/sta bench --suite hunyuan \
  --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward-c15.json 2>> /tmp/res2/log.txt
echo "c15 hunyuan backward suite --compare exit $?" | tee -a $OUT/summary2.txt
timeout 120 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --backward --reps 5 > $OUT/anchors.txt 2>&1; echo "anchors exit $?" | tee -a $OUT/summary2.txt
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/c15 STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 150 .device/sta verify "$@" > /tmp/res2/verify-$tag.txt 2>&1
  echo "c15 verify $tag exit $?: $(tail -1 /tmp/res2/verify-$tag.txt)" | tee -a $OUT/summary2.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s --backward --suite $s --kernel hopper & done
wait
tar czf $OUT/results2.tgz -C /tmp res2
