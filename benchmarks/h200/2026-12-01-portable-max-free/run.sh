#!/usr/bin/env bash
# One H200. .device/sta is the release build of this tree (Hopper forward v7). PMF replaces
# sta_forward_sm80.cu through STA_KERNEL_SOURCES (.device/var/PMF/): the portable forward's softmax without
# the step's row maxima once every row of the warp has a finite base (as the Hopper forward v7 does).
# Timings: base (the embedded kernels) and PMF alternating on the portable kernel, hunyuan 3x3x3 and dense
# in two rounds, wan 3x3x3 and the image suite in one (median of 10 each). Then PMF's checks: the forward
# matrix on the portable kernel in ten groups side by side and the three suites' layouts.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag = base ] || src=$PWD/.device/var/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 150 $N bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:5s} {r["problem"]:24s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel portable --only 3x3x3"; D="--suite hunyuan --kernel portable --only dense"
for tag in base PMF PMF base; do one $tag $H; one $tag $D; done
for tag in base PMF; do one $tag --suite wan --kernel portable; one $tag --suite image --kernel portable; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/var/PMF STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 240 $N verify "$@" \
    > /tmp/v/verify-$tag.txt 2>&1
  echo "verify PMF $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel portable --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel portable & done
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /'
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head
tar czf $OUT/verify.tgz -C /tmp/v .
