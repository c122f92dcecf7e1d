#!/usr/bin/env bash
# Written 2026-12-02, compile-checked; run as the first step of ../../2026-12-02-dk-split/run.sh. One H200, the release binary of this record's commit:
# the phase timeline of the Hopper backward's consumer loop (next/backward-timeline.patch through
# STA_KERNEL_SOURCES; thread 160's cycle sums per key block for SMs 0 and 1, printed by the last CTA), on
# the hunyuan 3×3×3 backward, one timed launch (the variant forces the statistics all ahead, as the
# launcher picks for hunyuan; the image layouts take half ahead, so they are left out).
cd "$(dirname "$0")/../../../.."
R=benchmarks/h200/2026-12-02-cta-timeline
mkdir -p /tmp/bt/src /tmp/btl
for f in $(sed -n 's#^+++ b/##p' $R/next/backward-timeline.patch); do cp Sources/STACUDAKernels/Kernels/$f /tmp/bt/src/; done
patch -s -p1 -d /tmp/bt/src < $R/next/backward-timeline.patch
for p in "hunyuan 3x3x3"; do
  set -- $p; mkdir -p -m 700 /tmp/kc-bt
  STA_KERNEL_CACHE=/tmp/kc-bt STA_KERNEL_SOURCES=/tmp/bt/src timeout 150 .device/sta bench --backward --suite $1 \
    --kernel hopper --only $2 --repetitions 1 --warmups 0 > /tmp/btl/backward-timeline-$1-$2.txt 2>&1
  echo "backward timeline $p exit $?"
done
python3 $R/analyze.py /tmp/btl/*.txt
tar czf $OUT/backward-timeline.tgz -C /tmp btl
