#!/usr/bin/env bash
# One H200, the stripped release build of 74a6d6b (.device/sta; its embedded kernels are A). S = A with
# .device/S through STA_KERNEL_SOURCES: each chunk's LSE2 and Δ stored by the statistics warp in the
# consumers' order, so that a consumer thread reads its 16 values of each with four 16-byte loads (one
# 64-byte wavefront per warp each) instead of eight 8-byte loads. A/B of the backward, alternating, median
# of 10; S's hunyuan suite against the committed baseline; FlexAttention's backward in the same call; then
# S's checks side by side: the backward matrix in ten groups, the three suites' layouts.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 150 .device/sta bench "$@" --json > /tmp/$tag.json 2>> /tmp/res/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
H="--suite hunyuan --kernel hopper --backward"
for tag in A S S A A S; do one $tag $H --only 3x3x3; done
for tag in A S S A; do one $tag --suite wan --kernel hopper --backward --only 3x3x3; one $tag --suite image --kernel hopper --backward; done
STA_KERNEL_SOURCES=$PWD/.device/S STA_KERNEL_CACHE=/tmp/kc-S timeout 150 .device/sta bench $H --json \
  --compare benchmarks/baselines/hunyuan-backward.json > $OUT/bench-hunyuan-backward-S.json 2>> /tmp/res/log.txt
echo "S hunyuan backward suite --compare exit $?" | tee -a $OUT/summary.txt
timeout 120 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --backward --reps 5 > $OUT/anchors.txt 2>&1; echo "anchors exit $?" | tee -a $OUT/summary.txt
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/S STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)"; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check backward-matrix-$n --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check backward-$s --backward --suite $s --kernel hopper & done
wait
grep -h ": pass" /tmp/res/verify-backward-matrix-*.txt | wc -l | sed 's/^/S backward matrix cases passed: /' | tee -a $OUT/summary.txt
grep -h "FAIL" /tmp/res/verify-*.txt | head | tee -a $OUT/summary.txt
tar czf $OUT/results.tgz -C /tmp res
