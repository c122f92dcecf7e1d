#!/usr/bin/env bash
# One H200. N = .device/sta, the stripped release build of the working tree (Hopper forward v9: chunk
# descriptors published by the producer, narrow chunks, packed key chunks for tiles padded along H, and
# write-only accumulators in the first wgmma of a chunk). A = the same binary with the v8 forward sources
# (HEAD eb9a8db) through STA_KERNEL_SOURCES (.device/A/); the backward kernel files are the same in both,
# only the shared wgmma wrappers differ. Timings alternate A and N (A N N A, median of 10 each): the
# hunyuan, wan and image suites on the Hopper kernel and the hunyuan 3x3x3 backward. Then N's checks side
# by side: the forward matrix on the Hopper kernel in ten groups, the three suites' layouts, the hunyuan
# backward layout.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag = N ] || src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 100 $N bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
for tag in A N N A; do
  one $tag --suite hunyuan --kernel hopper
  one $tag --suite wan --kernel hopper
  one $tag --suite image --kernel hopper
  one $tag --suite hunyuan --kernel hopper --only 3x3x3 --backward
done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 $N verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
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
