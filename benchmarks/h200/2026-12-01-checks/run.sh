#!/usr/bin/env bash
# One H200. S = .device/sta, the release build of 78ec483 (the kernels of this tree; later commits touch
# benchmark records and docs only). The backward suites of wan and image timed alone, then every check of
# the committed Hopper backward side by side: the matrix of `sta verify --backward --kernel hopper` split
# into its ten layouts (four dtype × head-dim cases each; --only), the three suites' layouts, and the
# forward matrix of both kernels. Before the checks, an Nsight Compute profile of the backward.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
S=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p -m 700 /tmp/kc; export STA_KERNEL_CACHE=/tmp/kc
for s in wan image; do
  timeout 100 $S bench --backward --suite $s --kernel hopper --json \
    > $OUT/bench-backward-$s.json 2>> $OUT/log.txt; echo "bench backward $s exit $?"
done
# Nsight Compute on one launch of the committed backward (hunyuan 3x3x3), clocks left alone, as
# ../2026-12-01-profile did for the tree before the statistics read-ahead.
W=/tmp/prof; mkdir -p $W
timeout 150 ncu --clock-control none --set full --import-source no -k regex:'^sta_backward_sm90$' -c 1 -o $W/bwd_hy -f \
  $S bench --suite hunyuan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0 --backward > $W/bwd_hy.log 2>&1
echo "ncu exit $?"; tail -2 $W/bwd_hy.log
ncu --import $W/bwd_hy.ncu-rep --page details > $OUT/bwd_hy_details.txt 2>&1
ncu --import $W/bwd_hy.ncu-rep --page source --csv --print-source sass 2>&1 | gzip -c > $OUT/bwd_hy_sass.csv.gz
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag timeout 400 $S verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check backward-matrix-$n --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check backward-$s --backward --suite $s --kernel hopper & done
check forward-matrix --kernel all &
wait
grep -h ": pass\|: FAIL\|passed, " /tmp/v/verify-backward-matrix-*.txt | grep -c ": pass" | sed 's/^/backward matrix cases passed: /'
tar czf $OUT/verify.tgz -C /tmp/v .
