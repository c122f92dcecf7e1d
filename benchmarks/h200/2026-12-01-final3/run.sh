#!/usr/bin/env bash
# One H200. N = .device/sta, the release build of this tree: the Hopper forward without the ping-pong turn
# barriers, its softmax ordered before the P·V wait and its wgmma descriptors computed once per chunk (as
# NTF of ../2026-12-01-no-turn; SASS identical for the hunyuan specialisation). O = .device/sta-old, the
# build of 78ec483. Timings: O and N alternating on hunyuan 3x3x3, N's three forward suites against the
# committed baselines, torch_anchors.py's forward peers for hunyuan and wan; then N's checks side by side.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta O=$PWD/.device/sta-old
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, binary, bench arguments...
  local tag=$1 bin=$2; shift 2
  timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:8s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper --only 3x3x3"
one O1 $O $H; one N1 $N $H; one O2 $O $H; one N2 $N $H
for s in hunyuan wan image; do
  timeout 120 $N bench --suite $s --kernel hopper --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
{ timeout 100 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
grep -h "exit\|flex\|matmul" $OUT/anchors.txt | grep -v "^{"
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag timeout 240 $N verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel all --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel all & done
check backward-hunyuan --backward --suite hunyuan --kernel hopper &
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /'
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head
tar czf $OUT/verify.tgz -C /tmp/v .
