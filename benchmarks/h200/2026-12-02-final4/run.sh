#!/usr/bin/env bash
# One H200, the stripped release build of 9bd8926 (.device/sta, the kernels embedded): `sta verify` of both
# Hopper kernels on the matrix (ten groups each, run side by side) and on the three suites' layouts.
cd "$(dirname "$0")/../../.."
mkdir -p /tmp/v
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag timeout 170 .device/sta verify "$@" > /tmp/v/$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/$tag.txt)" | tee -a $OUT/summary.txt; }
n=0
for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN contract" "rows 77,256" "rows 0,50"; do
  n=$((n + 1)); check fwd-$n --kernel hopper --only "$only" & check bwd-$n --backward --kernel hopper --only "$only" &
done
wait
for s in hunyuan wan image; do check fwd-$s --suite $s --kernel hopper & check bwd-$s --backward --suite $s --kernel hopper & done
wait
tar czf $OUT/verify.tgz -C /tmp v
