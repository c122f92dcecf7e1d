#!/usr/bin/env bash
# One H200, same binary as run.sh (A: the embedded v9 kernels). N: pingpong/, v9 with turns between the two
# consumer warpgroups (each issues its Q·Kᵀ + P·V group only on its turn and then hands the turn over), the
# change that the phase timeline of run3.sh points to: without turns the warpgroups issue together and
# their softmaxes run together while the tensor cores idle. First the timeline of N (pingpong-timeline/)
# on hunyuan 3×3×3 and image 256², then a smoke check of N, then A/B timings alternating A N N A (the
# three suites, Hopper kernel, median of 10 after 2 s idle), then N's checks: the forward matrix in ten
# groups and the three suites' layouts.
cd "$(dirname "$0")/../../.."
D=/tmp/variants
benchmarks/h200/2026-12-02-cta-timeline/variants.sh $D
mkdir -p /tmp/tl4 /tmp/v
for p in "hunyuan 3x3x3" "image 256x256"; do
  set -- $p; mkdir -p -m 700 /tmp/kc-ppt
  STA_KERNEL_CACHE=/tmp/kc-ppt STA_KERNEL_SOURCES=$D/pingpong-timeline timeout 100 .device/sta bench --suite $1 --kernel hopper \
    --only $2 --repetitions 1 --warmups 0 > /tmp/tl4/pingpong-timeline-$1-$2.txt 2>&1
  echo "timeline $p exit $?, $(grep -c '^T ' /tmp/tl4/pingpong-timeline-$1-$2.txt) records"
done
mkdir -p -m 700 /tmp/kc-N /tmp/kc-A
STA_KERNEL_CACHE=/tmp/kc-N STA_KERNEL_SOURCES=$D/pingpong timeout 90 .device/sta verify --kernel hopper --only "text 50/64" > /tmp/v/smoke.txt 2>&1
rc=$?; echo "smoke exit $rc: $(tail -1 /tmp/v/smoke.txt)" | tee -a $OUT/summary.txt
[ $rc = 0 ] || { tail -20 /tmp/v/smoke.txt; tar czf $OUT/timeline4.tgz -C /tmp/tl4 .; exit 1; }
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag = N ] && src=$D/pingpong
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 120 .device/sta bench "$@" --json > /tmp/$tag.json 2>> /tmp/tl4/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:24s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/tl4/bench-$tag-$(date +%s%N).json
}
for tag in A N N A; do
  for s in hunyuan wan image; do one $tag --suite $s --kernel hopper; done
done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$D/pingpong STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel hopper & done
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /' | tee -a $OUT/summary.txt
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head | tee -a $OUT/summary.txt
tar czf $OUT/verify4.tgz -C /tmp/v .
tar czf $OUT/timeline4.tgz -C /tmp/tl4 .
