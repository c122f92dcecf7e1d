#!/usr/bin/env bash
# One H200. A = .device/sta-old (the tree before this change), B = .device/sta (this tree: the Hopper
# backward loads each chunk's LSE and Δ from shared memory while the wgmmas run). Timings alternate A and
# B; then B on the whole hunyuan backward suite, torch_anchors.py's backward peers in the same call, and
# B's backward on the hunyuan layout against the float64 reference. ddesc: a forward variant (descriptors
# computed once per chunk) against B's embedded forward, through STA_KERNEL_SOURCES.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
A=$PWD/.device/sta-old B=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, binary, bench arguments...
  local tag=$1 bin=$2; shift 2
  timeout 120 $bin bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:10s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper"
W="--suite wan --kernel hopper --only 3x3x3 --backward"
one A1 $A $H --only 3x3x3 --backward
one B1 $B $H --only 3x3x3 --backward
one A2 $A $H --only 3x3x3 --backward
one B2 $B $H --only 3x3x3 --backward
one wanA1 $A $W
one wanB1 $B $W
one wanA2 $A $W
one wanB2 $B $W
one imageA $A --suite image --kernel hopper --backward
one imageB $B --suite image --kernel hopper --backward
timeout 120 $B bench $H --backward --json > $OUT/bench-backward-hunyuan.json 2>> $OUT/log.txt
python3 -c "
import json; d = json.load(open('$OUT/bench-backward-hunyuan.json')); m = d['matmul_bf16_tflops']
for r in d['results']: print('B-suite   ', r['problem'], '%.3f ms' % r['median_ms'], '%.1f %% of %.0f' % (100 * r['tflops'] / m, m))" | tee -a $OUT/summary.txt
one fwdB1 $B $H --only 3x3x3
STA_KERNEL_SOURCES=$PWD/.device/ddesc one ddesc1 $B $H --only 3x3x3
one fwdB2 $B $H --only 3x3x3
STA_KERNEL_SOURCES=$PWD/.device/ddesc one ddesc2 $B $H --only 3x3x3
timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --backward --reps 5 > $OUT/anchors-hunyuan-backward.txt 2>&1
echo "anchors exit $?"; tail -6 $OUT/anchors-hunyuan-backward.txt
timeout 150 $B verify --backward --kernel hopper --canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3 --heads 8 \
  > $OUT/verify-backward-hunyuan.txt 2>&1
echo "verify exit $?"; tail -4 $OUT/verify-backward-hunyuan.txt
# Nsight Compute on the forward with the softmax ordered before the P·V wait (.device/ord:
# ../2026-12-01-order/forward-order.patch), hunyuan 3x3x3, one launch, clocks left alone.
STA_KERNEL_SOURCES=$PWD/.device/ord timeout 120 ncu --clock-control none --set full --import-source no \
  -k regex:'^sta_forward_sm90$' -c 1 -o /tmp/fwd_ord -f $B bench $H --only 3x3x3 --repetitions 1 --warmups 0 > /tmp/ncu.log 2>&1
echo "ncu exit $?"
ncu --import /tmp/fwd_ord.ncu-rep --page details > $OUT/fwd_ord_details.txt 2>&1
ncu --import /tmp/fwd_ord.ncu-rep --page source --csv --print-source sass | gzip > $OUT/fwd_ord_sass.csv.gz
