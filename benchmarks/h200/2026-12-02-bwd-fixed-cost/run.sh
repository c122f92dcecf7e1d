#!/usr/bin/env bash
# One H200, the stripped release build of 5887506 (.device/sta; its embedded kernels are A). Where the
# Hopper backward's time goes outside its chunk loop:
#  1. Nsight Compute's duration of each of the three backward kernels (prepare, main, dQ conversion) on
#     hunyuan 3×3×3, 5×5×5 and dense, one launch each (clocks left alone);
#  2. the CTA timeline (.device/ctl = A with cta-timeline.patch) on hunyuan 3×3×3 and 5×5×5, one launch;
#  3. c1 (.device/c1 = A with c1.patch: the last reduction awaited only until it has read its buffer)
#     against A, alternating, median of 10; c12 (.device/c12 = c1 with c12.patch: dK and dV staged in the
#     free K and V buffers and written in 16-byte pieces, whole rows per warp) beside them; c12's checks
#     (the backward matrix in ten groups, the three suites' layouts).
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p /tmp/res
for p in 3x3x3 5x5x5 dense; do
  mkdir -p -m 700 /tmp/kc-A
  STA_KERNEL_CACHE=/tmp/kc-A timeout 90 ncu --clock-control none --metrics gpu__time_duration.sum \
    -k regex:sta_backward .device/sta bench --backward --suite hunyuan --kernel hopper --only $p \
    --repetitions 1 --warmups 0 --pause 0 > /tmp/res/ncu-$p.txt 2>&1
  echo "ncu $p exit $?"; grep -E "sta_backward|gpu__time_duration" /tmp/res/ncu-$p.txt | tee -a $OUT/summary.txt
done
for p in 3x3x3 5x5x5; do
  mkdir -p -m 700 /tmp/kc-ctl
  STA_KERNEL_CACHE=/tmp/kc-ctl STA_KERNEL_SOURCES=$PWD/.device/ctl timeout 120 .device/sta bench --backward \
    --suite hunyuan --kernel hopper --only $p --repetitions 1 --warmups 0 > /tmp/res/ctl-$p.txt 2>&1
  echo "timeline $p exit $?" | tee -a $OUT/summary.txt
  python3 benchmarks/h200/2026-12-02-bwd-fixed-cost/ctl.py /tmp/res/ctl-$p.txt | tee -a $OUT/summary.txt
done
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
for tag in A c1 c12 c12 c1 A; do one $tag --suite hunyuan --kernel hopper --backward --only 3x3x3; done
for tag in A c1 c12 c12 c1 A; do one $tag --suite image --kernel hopper --backward; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/c12 STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 150 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "c12 verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s --backward --suite $s --kernel hopper & done
wait
tar czf $OUT/results.tgz -C /tmp res
