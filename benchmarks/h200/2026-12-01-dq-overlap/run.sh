#!/usr/bin/env bash
# One H200. S = .device/sta, the release build of 78ec483 (the committed backward: statistics read ahead,
# two compile candidates, never run on a GPU before this call). B3 = S with .device/B3 through
# STA_KERNEL_SOURCES: the backward issues each chunk's dQ product before its dK product and stages and
# reduces dQ while dK runs. ET = S with .device/ET: the forward with the softmax ordered before the P·V
# wait, wgmma descriptors once per chunk, and the ping-pong turn handed over after Q·Kᵀ is issued
# (../2026-12-01-final2/next/forward-early-turn.patch). Timings alternate; then S's backward suite against
# the committed baseline, torch_anchors.py's backward peers, and checks of B3 and ET on the suites' layouts.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
S=$PWD/.device/sta B3=$PWD/.device/B3 ET=$PWD/.device/ET
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
H="--suite hunyuan --kernel hopper"
W="--suite wan --kernel hopper"
I="--suite image --kernel hopper"
one S1 "" $H --only 3x3x3 --backward
one B3a $B3 $H --only 3x3x3 --backward
one S2 "" $H --only 3x3x3 --backward
one B3b $B3 $H --only 3x3x3 --backward
one wS "" $W --only 3x3x3 --backward
one wB3 $B3 $W --only 3x3x3 --backward
one iS "" $I --backward
one iB3 $B3 $I --backward
timeout 100 $S bench $H --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-backward-hunyuan-S.json 2>> $OUT/log.txt; echo "compare exit $?" | tee -a $OUT/summary.txt
STA_KERNEL_SOURCES=$B3 timeout 100 $S bench $H --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-backward-hunyuan-B3.json 2>> $OUT/log.txt; echo "compare B3 exit $?" | tee -a $OUT/summary.txt
for f in S B3; do python3 -c "
import json; d = json.load(open('$OUT/bench-backward-hunyuan-$f.json')); m = d['matmul_bf16_tflops']
for r in d['results']: print('$f-suite', r['problem'], '%.3f ms' % r['median_ms'], '%.1f %% of %.0f' % (100 * r['tflops'] / m, m))" | tee -a $OUT/summary.txt; done
one fS1 "" $H
one fET1 $ET $H
one fS2 "" $H --only 3x3x3
one fET2 $ET $H --only 3x3x3
one fwS "" $W
one fwET $ET $W
timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --backward --reps 5 > $OUT/anchors-hunyuan-backward.txt 2>&1
echo "anchors exit $?"; tail -4 $OUT/anchors-hunyuan-backward.txt
# The checks run side by side (their float64 references are CPU work), each with its own kernel cache.
check() { local tag=$1 src=$2; shift 2; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag STA_KERNEL_SOURCES=$src timeout 150 $S verify "$@" > $OUT/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 $OUT/verify-$tag.txt)"; }
for s in hunyuan wan image; do
  check backward-$s-B3 $B3 --backward --suite $s --kernel hopper &
  check forward-$s-ET $ET --suite $s --kernel hopper &
done
wait
tar czf $OUT/verify.tgz -C $OUT $(cd $OUT && ls verify-*.txt) && rm $OUT/verify-*.txt
