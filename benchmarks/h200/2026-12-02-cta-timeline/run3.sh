#!/usr/bin/env bash
# One H200, same binary as run.sh. The timeline variant with per-phase cycle sums of the consumer step
# (thread 128: stage waits, the Q·Kᵀ + P·V issue, the Q·Kᵀ wait, mask + softmax, the P·V wait, release +
# pack), one timed launch each: hunyuan 3×3×3, image 256²; then two diagnostic variants of the same
# timeline on hunyuan 3×3×3 (wrong results, timing only): tensor-only/ (no softmax: the scores go to P as
# they are) and no-exp/ (the chunk softmax without its 96 exponentials).
cd "$(dirname "$0")/../../.."
D=/tmp/variants
benchmarks/h200/2026-12-02-cta-timeline/variants.sh $D
mkdir -p /tmp/tl3
one() { # variant, suite, problem
  mkdir -p -m 700 /tmp/kc-$1
  STA_KERNEL_CACHE=/tmp/kc-$1 STA_KERNEL_SOURCES=$D/$1 timeout 100 .device/sta bench --suite $2 --kernel hopper --only $3 \
    --repetitions 1 --warmups 0 > /tmp/tl3/$1-$2-$3.txt 2>&1
  echo "$1 $2 $3 exit $?, $(grep -c '^T ' /tmp/tl3/$1-$2-$3.txt) records, $(grep -o 'hopper: [0-9.]* ms' /tmp/tl3/$1-$2-$3.txt | tail -1)"
}
one timeline hunyuan 3x3x3
one timeline image 256x256
one tensor-only hunyuan 3x3x3
one no-exp hunyuan 3x3x3
one timeline hunyuan 5x5x5
tar czf $OUT/timeline3.tgz -C /tmp/tl3 .
