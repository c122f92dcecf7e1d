#!/usr/bin/env bash
# One H200, the stripped release build of 3a6066f (.device/sta; its embedded kernels are A). The Hopper
# forward's chunk exponentials in chained groups (scripts/issue_contention.cu: beside a warp's MUFU stream,
# the other warpgroup's wgmmas ran 7 % longer; with the exponentials in groups of 12-24 whose FFMAs wait for
# the previous groups' sums, as long as alone):
#  G24 (.device/G24 = A with g24.patch): the chunk softmax's 96 exponentials per thread in 4 groups of 24,
#    each group's bias b + (r − r) on the row sums so far (4 FADDs per boundary);
#  G16 (.device/G16 = A with g16.patch): 6 groups of 16.
# A/B alternating inside the call (sta bench --kernel hopper, median of 10, 2 s pauses), then G24's checks.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
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
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in A G24 G16 G16 G24 A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for tag in A G24 G16 G16 G24 A; do one $tag --suite wan --kernel hopper; done
for tag in A G24 G16 G16 G24 A; do one $tag --suite image --kernel hopper; done
for tag in A G24 G24 A; do one $tag --suite hunyuan --kernel hopper --only dense; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/G24 STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "G24 verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s --suite $s --kernel hopper & done
wait
tar czf $OUT/results.tgz -C /tmp res
