#!/usr/bin/env bash
# One H200. A = .device/sta, the binary of calls 1 and 2 (a752630 with ../launcher.patch; its embedded
# kernels are the committed ones). D1 = call 2's B1 (../B1.patch) with the barrier and the previous
# chunk's bulk reduction issued after the next chunk's dV instead of after its dPᵀ (../D1.patch), so that
# the reduction reads its 32 KB of shared memory while dV, whose B operand alone comes from shared memory,
# runs instead of during Sᵀ's phase. Alternating, median of 10 each; D1's checks (the backward matrix in ten
# groups, the three suites' layouts).
cd "$(dirname "$0")/../../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
R=/tmp/res; mkdir -p $R
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 120 .device/sta bench "$@" --json > /tmp/$tag.json 2>> $R/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json $R/bench-$tag-$(date +%s%N).json
}
for tag in A D1 D1 A A D1; do one $tag --suite hunyuan --kernel hopper --backward --only 3x3x3; done
for tag in A D1 D1 A; do one $tag --suite image --kernel hopper --backward; one $tag --suite wan --kernel hopper --backward --only 3x3x3; done
check() { local tag=$1 v=$2; shift 2; mkdir -p -m 700 /tmp/kc-v-$v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/$v STA_KERNEL_CACHE=/tmp/kc-v-$v-$tag timeout 230 .device/sta verify "$@" > $R/verify-$v-$tag.txt 2>&1
  echo "$v verify $tag exit $?: $(tail -1 $R/verify-$v-$tag.txt)" >> $R/checks.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n D1 --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check $s D1 --backward --suite $s --kernel hopper & done
wait
sort $R/checks.txt | tee -a $OUT/summary.txt
tar czf $OUT/results.tgz -C /tmp res
