#!/usr/bin/env bash
# One H200. .device/sta is the stripped release build of the commit before this folder (Hopper forward v8, sustained matrix rate
# in `sta bench`). BP replaces sta_sm90_bwd_consumer.cuh through STA_KERNEL_SOURCES (.device/var/BP/): the
# backward's Pᵀ recomputed with one FFMA and one exponential per entry when every key row of the warp is
# real (before: FFMA, FADD, exponential). Timings: base (the embedded kernels) and BP alternating, the
# hunyuan backward 3x3x3 in three rounds, the whole hunyuan backward suite and wan's in one (median of
# 10). Then BP's checks: the backward matrix in ten groups side by side and the suites' layouts.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag = base ] || src=$PWD/.device/var/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 120 $N bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]; s = d["matmul_bf16_sustained_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:5s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}  {100 * r["tflops"] / s:5.1f} % of {s:.0f}')
P
}
H="--suite hunyuan --kernel hopper --backward --only 3x3x3"
for tag in base BP BP base base BP; do one $tag $H; done
for tag in base BP; do one $tag --suite hunyuan --kernel hopper --backward; one $tag --suite wan --kernel hopper --backward; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/var/BP STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 280 $N verify "$@" \
    > /tmp/v/verify-$tag.txt 2>&1
  echo "verify BP $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check backward-$(echo $only | tr -c 'a-z0-9\n' '_') --backward --kernel hopper --only "$only" &
done
for s in hunyuan wan image; do check backward-$s --backward --suite $s --kernel hopper & done
wait
grep -h ": pass" /tmp/v/verify-backward-*.txt | wc -l | sed 's/^/backward cases passed: /'
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head
tar czf $OUT/verify.tgz -C /tmp/v .
