#!/usr/bin/env bash
# One H200. A = .device/sta, the stripped release build of a752630 with launcher.patch (the main backward
# kernel is also handed tensor maps of dK and dV, trailing parameters the committed kernels ignore); its
# embedded kernels are the committed ones. R5 = A's kernels with R5.patch through STA_KERNEL_SOURCES: each
# chunk's dQ contribution is staged at the start of the next chunk, once that chunk's Sᵀ is issued, and
# reduced once its dPᵀ is issued. E = R5 with E.patch's epilogue: whole key blocks leave by TMA stores from
# the K and V buffers. Alternating, median of 10 each (`sta bench`, 2 s idle before each problem); then each
# variant's hunyuan backward suite against the committed baseline, FlexAttention's backward in the same
# call, and checks (E: the backward matrix in ten groups; both: the three suites' layouts).
cd "$(dirname "$0")/../../.."
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
for tag in A R5 E E R5 A A R5 E; do one $tag --suite hunyuan --kernel hopper --backward --only 3x3x3; done
for tag in A R5 E E R5 A; do one $tag --suite image --kernel hopper --backward; one $tag --suite wan --kernel hopper --backward --only 3x3x3; done
for tag in E R5; do
  STA_KERNEL_SOURCES=$PWD/.device/$tag STA_KERNEL_CACHE=/tmp/kc-$tag timeout 100 .device/sta bench --suite hunyuan \
    --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
    > $OUT/bench-hunyuan-backward-$tag.json 2>> $R/log.txt
  echo "$tag hunyuan backward suite --compare exit $?" | tee -a $OUT/summary.txt
done
timeout 120 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --backward --reps 5 > $OUT/anchors.txt 2>&1; echo "anchors exit $?" | tee -a $OUT/summary.txt
check() { local tag=$1 v=$2; shift 2; mkdir -p -m 700 /tmp/kc-v-$v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/$v STA_KERNEL_CACHE=/tmp/kc-v-$v-$tag timeout 170 .device/sta verify "$@" > $R/verify-$v-$tag.txt 2>&1
  echo "$v verify $tag exit $?: $(tail -1 $R/verify-$v-$tag.txt)" >> $R/checks.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check matrix-$n E --backward --kernel hopper --only "$only" &
done
for v in E R5; do
  for s in hunyuan wan image; do check $s $v --backward --suite $s --kernel hopper & done
done
wait
sort $R/checks.txt | tee -a $OUT/summary.txt
tar czf $OUT/results.tgz -C /tmp res
