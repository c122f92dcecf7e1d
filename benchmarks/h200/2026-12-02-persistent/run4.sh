#!/usr/bin/env bash
# One H200. Is v10's per-chunk cost the scheduler warp polling the Q-empty barrier for most of each unit
# (it shares its SM sub-partition with consumer warps, whose softmax is bound by instruction issue)?
# A = .device/sta (v9, the build of 48e824c); P = .device/sta-v10 (the clean release build of f6cdba0);
# S = the same binary with the scheduler's wait for Q empty sleeping 0.5 µs between polls
# (.device/S/sta_sm90_mainloop.cuh through STA_KERNEL_SOURCES). Order A P S S P A, median of 10, 2 s idle
# before each problem. Then S's checks: the forward matrix in ten groups with 3 CTAs, the suites' layouts.
cd "$(dirname "$0")/../../.."
one() { # tag, bench arguments...
  local tag=$1; shift
  local bin=$PWD/.device/sta-v10 src=; [ $tag = A ] && bin=$PWD/.device/sta; [ $tag = S ] && src=$PWD/.device/S
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
for tag in A P S S P A; do
  one $tag --suite hunyuan --kernel hopper --only 3x3x3
  one $tag --suite hunyuan --kernel hopper --only 5x5x5
  one $tag --suite wan --kernel hopper --only 3x5x5
  one $tag --suite image --kernel hopper --only 128
done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/S STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 150 $PWD/.device/sta-v10 verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  (export STA_PERSISTENT_CTAS=3; check few-ctas-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only") &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel hopper & done
wait
grep -h ": pass" /tmp/v/verify-*.txt | wc -l | sed 's/^/S forward cases passed: /' | tee -a $OUT/summary.txt
tar czf $OUT/verify.tgz -C /tmp/v .
