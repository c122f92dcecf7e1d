#!/bin/bash
# Profile the Hopper kernels with Nsight Compute (hardware counters, clocks left alone).
set -u
S=$PWD/.device/sta
export STA_KERNEL_CACHE=/tmp/kc; mkdir -p -m 700 /tmp/kc
W=/tmp/prof; mkdir -p $W
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv
ncu --version | tail -1
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
prof bwd_hy '^sta_backward_sm90$' bench --suite hunyuan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0 --backward
prof fwd_wan '^sta_forward_sm90$' bench --suite wan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0
ncu --clock-control none --set full -k regex:'gemm|xmma|nvjet|cutlass' -c 1 -o $W/gemm -f $S bench --suite image --kernel hopper --only 128 --repetitions 1 --warmups 0 > $W/gemm.log 2>&1
echo "== gemm rc=$?"; tail -3 $W/gemm.log
ncu --import $W/gemm.ncu-rep --page details > $OUT/gemm_details.txt 2>&1
cd $W && tar czf $OUT/reps.tgz *.ncu-rep && ls -la $OUT
