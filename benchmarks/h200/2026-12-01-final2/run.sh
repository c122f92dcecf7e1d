#!/usr/bin/env bash
# One H200. A = .device/sta-old (the tree of the day's start), B = .device/sta (this tree: the Hopper
# backward reads half of each chunk's LSE ahead of the S/dP wait). F = B with the forward variant in
# .device/F (through STA_KERNEL_SOURCES): the softmax ordered before the P·V wait, and wgmma descriptors
# computed once per chunk (../2026-12-01-order/forward-order.patch, ../2026-12-01-bwd-statistics/ddesc.patch).
# Timings alternate; then B on the hunyuan backward suite; then the checks: B's backward matrix on the
# Hopper kernel, and F's forward matrix and suite layouts on the Hopper kernel.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
A=$PWD/.device/sta-old B=$PWD/.device/sta F=$PWD/.device/F
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, binary, bench arguments...
  local tag=$1 bin=$2; shift 2
  timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:8s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper"
W="--suite wan --kernel hopper"
one A1 $A $H --only 3x3x3 --backward
one B1 $B $H --only 3x3x3 --backward
one wanA1 $A $W --only 3x3x3 --backward
one wanB1 $B $W --only 3x3x3 --backward
one A2 $A $H --only 3x3x3 --backward
one B2 $B $H --only 3x3x3 --backward
one wanA2 $A $W --only 3x3x3 --backward
one wanB2 $B $W --only 3x3x3 --backward
one imageA $A --suite image --kernel hopper --backward
one imageB $B --suite image --kernel hopper --backward
timeout 100 $B bench $H --backward --json > $OUT/bench-backward-hunyuan.json 2>> $OUT/log.txt
python3 -c "
import json; d = json.load(open('$OUT/bench-backward-hunyuan.json')); m = d['matmul_bf16_tflops']
for r in d['results']: print('B-suite ', r['problem'], '%.3f ms' % r['median_ms'], '%.1f %% of %.0f' % (100 * r['tflops'] / m, m))" | tee -a $OUT/summary.txt
one fB1 $B $H --only 3x3x3
STA_KERNEL_SOURCES=$F one fF1 $B $H
one fB2 $B $H
STA_KERNEL_SOURCES=$F one fF2 $B $H --only 3x3x3
one fwB1 $B $W
STA_KERNEL_SOURCES=$F one fwF1 $B $W
one fiB1 $B --suite image --kernel hopper
STA_KERNEL_SOURCES=$F one fiF1 $B --suite image --kernel hopper
timeout 240 $B verify --backward --kernel hopper > $OUT/verify-backward-B.txt 2>&1
echo "verify backward B exit $?"; tail -1 $OUT/verify-backward-B.txt
STA_KERNEL_SOURCES=$F timeout 120 $B verify --kernel hopper > $OUT/verify-forward-F.txt 2>&1
echo "verify forward F exit $?"; tail -1 $OUT/verify-forward-F.txt
for s in hunyuan wan image; do STA_KERNEL_SOURCES=$F timeout 60 $B verify --suite $s --kernel hopper 2>&1 | tail -1; done | tee $OUT/verify-suites-F.txt
