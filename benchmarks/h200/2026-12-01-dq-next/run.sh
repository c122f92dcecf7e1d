#!/usr/bin/env bash
# One H200. S = .device/sta, the release build of 78ec483 (as ../2026-12-01-dq-overlap). B5 = S with
# .device/B5 through STA_KERNEL_SOURCES: the backward issues each chunk's dQ product at the start of the
# next chunk, right ahead of that chunk's Sᵀ, stages it while Sᵀ runs and reduces it once dPᵀ is issued;
# the barrier dQ needs is crossed while dK runs. ET = S with .device/ET (../2026-12-01-dq-overlap's
# forward candidate). Timings alternate; then the checks side by side: B5's backward matrix and suite
# layouts, ET's forward matrix.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
S=$PWD/.device/sta B5=$PWD/.device/B5 ET=$PWD/.device/ET
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
one B5a $B5 $H --only 3x3x3 --backward
one S2 "" $H --only 3x3x3 --backward
one B5b $B5 $H --only 3x3x3 --backward
one wS "" $W --only 3x3x3 --backward
one wB5 $B5 $W --only 3x3x3 --backward
one iS "" $I --backward
one iB5 $B5 $I --backward
STA_KERNEL_SOURCES=$B5 timeout 100 $S bench $H --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-backward-hunyuan-B5.json 2>> $OUT/log.txt; echo "compare B5 exit $?" | tee -a $OUT/summary.txt
python3 -c "
import json; d = json.load(open('$OUT/bench-backward-hunyuan-B5.json')); m = d['matmul_bf16_tflops']
for r in d['results']: print('B5-suite', r['problem'], '%.3f ms' % r['median_ms'], '%.1f %% of %.0f' % (100 * r['tflops'] / m, m))" | tee -a $OUT/summary.txt
one fS1 "" $H --only 3x3x3
one fET1 $ET $H --only 3x3x3
one fwS "" $W
one fwET $ET $W
one fiS "" $I
one fiET $ET $I
one fS2 "" $H --only 3x3x3
one fET2 $ET $H --only 3x3x3
# The checks run side by side (their float64 references are CPU work), each with its own kernel cache.
check() { local tag=$1 src=$2; shift 2; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag STA_KERNEL_SOURCES=$src timeout 280 $S verify "$@" > $OUT/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 $OUT/verify-$tag.txt)"; }
check backward-matrix-B5 $B5 --backward --kernel hopper &
check forward-matrix-ET $ET --kernel hopper &
for s in hunyuan wan image; do check backward-$s-B5 $B5 --backward --suite $s --kernel hopper & done
wait
tar czf $OUT/verify.tgz -C $OUT $(cd $OUT && ls verify-*.txt) && rm $OUT/verify-*.txt
