#!/usr/bin/env bash
# TF (the text's narrow last chunk visited first) against A (v12, the binary's embedded kernels) on the
# hunyuan suite, alternating A TF TF A per problem; then TF's checks. .device/sta = the stripped release
# build of 679c84b; .device/TF = Sources/STACUDAKernels/Kernels with tf.patch.
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
for only in 3x3x3 mixed 3x3x3 5x5x5 dense; do
  for tag in A TF TF A; do one $tag --suite hunyuan --kernel hopper --only $only; done
done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/TF STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "TF verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n --kernel hopper --only "$only" &
done
check hunyuan --suite hunyuan --kernel hopper &
wait
tar czf $OUT/results.tgz -C /tmp res
