#!/usr/bin/env bash
# Writes the kernel-source variants of this record into DIR/<name>/ (for STA_KERNEL_SOURCES): each is the
# files its patch touches, taken from Sources/STACUDAKernels/Kernels at the record's commit and patched.
#   timeline           clock64 stamps of one consumer thread and per-phase cycle sums of the consumer step,
#                      kept in a device buffer and printed by the last CTA to finish (`T` records)
#   tensor-only        timeline, the chunk softmax replaced by nothing (wrong results; timing only)
#   no-exp             timeline, the chunk softmax without its exponentials (wrong results; timing only)
#   pingpong           v9 with turns between the consumer warpgroups
#   pingpong-timeline  timeline with the same turns
# Usage: variants.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernels=$here/../../../Sources/STACUDAKernels/Kernels
for patch in "$here"/*.patch; do
  name=$(basename "$patch" .patch)
  mkdir -p "$1/$name"
  for file in $(sed -n 's#^+++ b/##p' "$patch"); do cp "$kernels/$file" "$1/$name/"; done
  patch -s -p1 -d "$1/$name" < "$patch"
done
