#!/usr/bin/env bash
# One H200. S = .device/sta, the release build of 78ec483 (the committed kernels). L1 and L2 = S with
# .device/L1 or .device/L2 through STA_KERNEL_SOURCES: the backward reads a chunk's statistics from shared
# memory before it issues the chunk's Sᵀ and dPᵀ wgmmas instead of after (the profile in
# ../2026-12-01-checks shows the first exponentials waiting for those loads, queued behind the wgmmas'
# operand reads): L1 the LSE2 only, L2 the LSE2 and Δ. Timings alternate; then every check of both side
# by side (the backward matrix split by layout with --only, the three suites' layouts).
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
S=$PWD/.device/sta L1=$PWD/.device/L1 L2=$PWD/.device/L2
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
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
H="--suite hunyuan --kernel hopper --backward"
W="--suite wan --kernel hopper --backward --only 3x3x3"
I="--suite image --kernel hopper --backward"
one S1 "" $H --only 3x3x3
one L2a $L2 $H --only 3x3x3
one L1a $L1 $H --only 3x3x3
one S2 "" $H --only 3x3x3
one L2b $L2 $H --only 3x3x3
one L1b $L1 $H --only 3x3x3
one wS "" $W
one wL2 $L2 $W
one wL1 $L1 $W
one iS "" $I
one iL2 $L2 $I
one iL1 $L1 $I
STA_KERNEL_SOURCES=$L2 timeout 100 $S bench $H --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-backward-hunyuan-L2.json 2>> $OUT/log.txt; echo "compare L2 exit $?" | tee -a $OUT/summary.txt
check() { local tag=$1 src=$2; shift 2; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag STA_KERNEL_SOURCES=$src timeout 300 $S verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for V in L1 L2; do
  n=0
  for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
              "NaN contract" "rows 77,256" "rows 0,50"; do
    n=$((n + 1)); check $V-matrix-$n ${!V} --backward --kernel hopper --only "$only" &
  done
  for s in hunyuan wan image; do check $V-$s ${!V} --backward --suite $s --kernel hopper & done
done
wait
for V in L1 L2; do
  grep -h ": pass" /tmp/v/verify-$V-matrix-*.txt | wc -l | sed "s/^/$V backward matrix cases passed: /"
done
tar czf $OUT/verify.tgz -C /tmp/v .
