#!/usr/bin/env bash
# A second call: `sta verify --kernel hopper` on the verify matrix (ten groups in parallel) with the
# committed binary (.device/sta, 679c84b's kernels; run.sh checked the suites' layouts).
cd "$(dirname "$0")/../../.."
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); mkdir -p -m 700 /tmp/kc-m$n
  ( STA_KERNEL_CACHE=/tmp/kc-m$n timeout 150 .device/sta verify --kernel hopper --only "$only" > /tmp/verify-matrix-$n.txt 2>&1
    echo "verify matrix-$n ($only) exit $?: $(tail -1 /tmp/verify-matrix-$n.txt)" >> $OUT/verify-matrix.txt ) &
done
wait
cat /tmp/verify-matrix-*.txt > $OUT/verify-matrix-output.txt
cat $OUT/verify-matrix.txt
