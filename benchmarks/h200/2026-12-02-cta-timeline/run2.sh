#!/usr/bin/env bash
# One H200, same binary as run.sh. The timeline variant again, now with the records kept in a device
# buffer and printed by the last CTA to finish (run.sh's first version printed at the end of each CTA, and
# the printing filled the gaps between CTAs): hunyuan 3×3×3 and 5×5×5, wan 3×3×3, image 256², one timed
# launch each.
cd "$(dirname "$0")/../../.."
benchmarks/h200/2026-12-02-cta-timeline/variants.sh /tmp/variants
export STA_KERNEL_CACHE=/tmp/kc-t2 STA_KERNEL_SOURCES=/tmp/variants/timeline
mkdir -p -m 700 /tmp/kc-t2 /tmp/tl
for p in "hunyuan 3x3x3" "hunyuan 5x5x5" "wan 3x3x3" "image 256x256"; do
  set -- $p
  timeout 100 .device/sta bench --suite $1 --kernel hopper --only $2 --repetitions 1 --warmups 0 \
    > /tmp/tl/timeline-$1-$2.txt 2>&1; echo "timeline $p exit $?, $(grep -c '^T ' /tmp/tl/timeline-$1-$2.txt) records"
done
tar czf $OUT/timeline2.tgz -C /tmp/tl .
