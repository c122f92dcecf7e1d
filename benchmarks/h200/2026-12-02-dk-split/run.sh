#!/usr/bin/env bash
# One H200, the stripped release build of 74a6d6b (.device/sta; its embedded kernels are A). First the phase
# timeline of A's backward consumer loop (../2026-12-02-cta-timeline/next/backward-timeline.patch on
# .device/base, A's kernel sources), hunyuan 3×3×3. Then A/B of the backward, alternating, median of 10:
# E3, E2, E0 = the dK split (.device/E<n>, through STA_KERNEL_SOURCES): dK's first n of 4 query steps
# issued from registers before the dSᵀ barrier as in A, the rest read dSᵀ from shared memory after the dQ
# product, in flight while dQ is staged and reduced and across the loop's back edge (E2, E0 spill 64 bytes
# and take all statistics ahead regardless). Then E3's checks side by side: the backward matrix in ten
# groups, the three suites' layouts; E2's hunyuan layout.
cd "$(dirname "$0")/../../.."
R=benchmarks/h200/2026-12-02-dk-split
T=benchmarks/h200/2026-12-02-cta-timeline
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
# 1. The timeline of A's backward.
mkdir -p /tmp/bt/src /tmp/btl && cp .device/base/* /tmp/bt/src/
patch -s -p1 -d /tmp/bt/src < $T/next/backward-timeline.patch
mkdir -p -m 700 /tmp/kc-bt
STA_KERNEL_CACHE=/tmp/kc-bt STA_KERNEL_SOURCES=/tmp/bt/src timeout 150 .device/sta bench --backward --suite hunyuan \
  --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0 > /tmp/btl/backward-timeline-hunyuan-3x3x3.txt 2>&1
echo "backward timeline exit $?, $(grep -c '^B ' /tmp/btl/backward-timeline-hunyuan-3x3x3.txt) records"
python3 $T/analyze.py /tmp/btl/*.txt | tee $OUT/timeline-summary.txt
tar czf $OUT/backward-timeline.tgz -C /tmp btl
# 2. A/B.
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 120 .device/sta bench "$@" --json > /tmp/$tag.json 2>> /tmp/res/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
H="--suite hunyuan --kernel hopper --backward"
for tag in A E3 E2 E0 E0 E2 E3 A; do one $tag $H --only 3x3x3; done
for tag in A E3 E3 A; do one $tag --suite wan --kernel hopper --backward --only 3x3x3; one $tag --suite image --kernel hopper --backward; done
one E3 $H
# 3. Checks.
check() { local tag=$1 src=$2; shift 2; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$src STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)"; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check E3-backward-matrix-$n $PWD/.device/E3 --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check E3-backward-$s $PWD/.device/E3 --backward --suite $s --kernel hopper & done
check E2-backward-hunyuan $PWD/.device/E2 --backward --suite hunyuan --kernel hopper &
wait
grep -h ": pass" /tmp/res/verify-E3-backward-matrix-*.txt | wc -l | sed 's/^/E3 backward matrix cases passed: /' | tee -a $OUT/summary.txt
grep -h "FAIL" /tmp/res/verify-*.txt | head | tee -a $OUT/summary.txt
tar czf $OUT/results.tgz -C /tmp res
