#!/usr/bin/env bash
# Materialises the measured variants into DIR/E3, DIR/E2, DIR/E0 from the kernel sources of 74a6d6b
# (Sources/STACUDAKernels/Kernels at that commit) and dk-split.patch: E<n> issues n of dK's 4 query steps
# from registers before the dSᵀ barrier (STA_BWD_DK_EARLY); E2 and E0 also force the statistics all ahead.
set -e
cd "$(dirname "$0")"
D=${1:?usage: variants.sh DIR}
for e in 3 2 0; do
  rm -rf $D/E$e && mkdir -p $D/E$e
  git show 74a6d6b:Sources/STACUDAKernels/Kernels --name-only | tail -n +3 | while read f; do
    [ -n "$f" ] && git show 74a6d6b:Sources/STACUDAKernels/Kernels/$f > $D/E$e/$f; done
  patch -s -p1 -d $D/E$e < dk-split.patch
  extra="#define STA_BWD_DK_EARLY $e"
  [ $e != 3 ] && extra="$extra\n#undef STA_BWD_STATS_AHEAD\n#define STA_BWD_STATS_AHEAD 2"
  sed -i "s|^#include \"sta_common.cuh\"\$|$extra\n#include \"sta_common.cuh\"|" $D/E$e/sta_backward_sm90.cu
done
