#!/bin/bash
# Profile the Hopper forward v7 with Nsight Compute (hardware counters, clocks left alone): one launch on
# hunyuan 3x3x3 and one on wan 3x3x3 inside `sta bench`.
set -u
cd "$(dirname "$0")/../../.."
S=$PWD/.device/sta
export STA_KERNEL_CACHE=/tmp/kc; mkdir -p -m 700 /tmp/kc
W=/tmp/prof; mkdir -p $W
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv
NCU="ncu --clock-control none --set full --import-source no --target-processes all"
prof() { # name, kernel regex, sta args...
  local name=$1 kre=$2; shift 2
  local t0=$(date +%s)
  $NCU -k regex:"$kre" -c 1 -o $W/$name -f "$S" "$@" > $W/$name.log 2>&1
  echo "== $name rc=$? $(( $(date +%s) - t0 )) s"; tail -3 $W/$name.log
  ncu --import $W/$name.ncu-rep --page details > $OUT/${name}_details.txt 2>&1
  ncu --import $W/$name.ncu-rep --page source --csv --print-source sass > $W/${name}_sass.csv 2>&1
  gzip -c $W/${name}_sass.csv > $OUT/${name}_sass.csv.gz
}
prof fwd_hy '^sta_forward_sm90$' bench --suite hunyuan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0
prof fwd_wan '^sta_forward_sm90$' bench --suite wan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0
grep -h "Duration\|Tensor\|Issue Slots Busy\|SM Frequency" $OUT/*_details.txt | head -20
