#!/usr/bin/env bash
# One H200. N = .device/sta, the release build of a8cb3ca (the forward without turn barriers). SP = N with
# .device/SP through STA_KERNEL_SOURCES: P·V issued in thirds between the softmax's steps instead of in one
# group with Q·Kᵀ (../2026-12-01-wgmma-issue: a warp that issues more than ~7 wgmmas ahead of the tensor
# cores waits in the issue). Timings alternate; then SP's checks side by side.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
S=$PWD/.device/sta SP=$PWD/.device/SP
one() { # tag, sources ("" for the embedded kernels), bench arguments...
  local tag=$1 src=$2; shift 2
  STA_KERNEL_SOURCES=$src timeout 100 $S bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:8s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper"
one N1 "" $H --only 3x3x3; one SP1 $SP $H --only 3x3x3; one N2 "" $H --only 3x3x3; one SP2 $SP $H --only 3x3x3
one hN "" $H; one hSP $SP $H
one wN "" --suite wan --kernel hopper; one wSP $SP --suite wan --kernel hopper
one iN "" --suite image --kernel hopper; one iSP $SP --suite image --kernel hopper
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag STA_KERNEL_SOURCES=$SP timeout 100 $S verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check m-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s --suite $s --kernel hopper & done
wait
grep -h ": pass" /tmp/v/verify-*.txt | wc -l | sed 's/^/SP cases passed: /'
tar czf $OUT/verify.tgz -C /tmp/v .
