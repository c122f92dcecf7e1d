#!/usr/bin/env bash
# One H200, the stripped release build of cc448bf (.device/sta; its embedded kernels are A = Hopper forward
# v11). Variants through STA_KERNEL_SOURCES (.device/VW, .device/KA, .device/KV = A with the patches here).
# A/B alternating inside the call (sta bench --kernel hopper, median of 10, 2 s pauses), then KV's checks.
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
for tag in A VW KA KV KV KA VW A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for tag in A KV KA KA KV A; do one $tag --suite wan --kernel hopper; done
for tag in A KV KV A; do one $tag --suite image --kernel hopper; done
for tag in A KV KV A; do one $tag --suite hunyuan --kernel hopper --only dense; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/KV STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "KV verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s --suite $s --kernel hopper & done
wait
tar czf $OUT/results.tgz -C /tmp res
