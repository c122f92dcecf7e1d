#!/usr/bin/env bash
# One H200. .device/sta is the release build of bb49b4e (Hopper forward v7). IW replaces
# sta_forward_sm90.cu, sta_sm90_shape.cuh, sta_sm90_mainloop.cuh and sta_sm90_work.cuh through
# STA_KERNEL_SOURCES (.device/var/IW/): a query block of at most 64 rows is computed by one consumer
# warpgroup (the stage barriers count its four warps), the other skips the main loop. Timings: base (the
# embedded kernels) and IW alternating on the wan suite (three rounds) and hunyuan 3x3x3 (two rounds),
# median of 10 each. Then IW's checks: the forward matrix on the Hopper kernel in ten groups side by side,
# the three suites' layouts and the hunyuan backward layout.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag = base ] || src=$PWD/.device/var/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 100 $N bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:5s} {r["problem"]:24s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper --only 3x3x3"; W="--suite wan --kernel hopper"
for tag in base IW IW base base IW; do one $tag $W; done
for tag in base IW IW base; do one $tag $H; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/var/IW STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 240 $N verify "$@" \
    > /tmp/v/verify-$tag.txt 2>&1
  echo "verify IW $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel hopper & done
check backward-hunyuan --backward --suite hunyuan --kernel hopper &
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /'
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head
tar czf $OUT/verify.tgz -C /tmp/v .
