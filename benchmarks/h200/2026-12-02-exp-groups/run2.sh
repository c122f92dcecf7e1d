#!/usr/bin/env bash
# Call 2. One H200, the stripped release build of 36a0154 (.device/sta; its embedded kernels are A = v11,
# exponentials in groups of 24). G32, G48 (.device/G32, .device/G48): EXP_GROUP 32 and 48 (three and two
# groups per 192-key chunk). A/B alternating (sta bench --kernel hopper, median of 10, 2 s pauses).
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 150 .device/sta bench "$@" --json > /tmp/$tag.json 2>> /tmp/res/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary2.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in A G48 G32 G32 G48 A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for tag in A G48 G32 G32 G48 A; do one $tag --suite wan --kernel hopper --only 3x3x3; done
for tag in A G48 G32 G32 G48 A; do one $tag --suite image --kernel hopper; done
for tag in A G48 G48 A; do one $tag --suite hunyuan --kernel hopper --only dense; done
tar czf $OUT/results2.tgz -C /tmp res
