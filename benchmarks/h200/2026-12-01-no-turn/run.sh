#!/usr/bin/env bash
# One H200. S = .device/sta, the release build of 78ec483 (the committed kernels). NT = S with .device/NT
# through STA_KERNEL_SOURCES: the forward without the ping-pong turn barriers (each consumer warpgroup
# issues its wgmmas as soon as its data is ready). NTF = ../2026-12-01-dq-overlap's ET without the turn
# barriers (softmax ordered before the P·V wait, wgmma descriptors once per chunk). Timings alternate;
# then the suites' layouts of both on the Hopper kernel.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
S=$PWD/.device/sta NT=$PWD/.device/NT NTF=$PWD/.device/NTF
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # tag, sources ("" for the embedded kernels), bench arguments...
  local tag=$1 src=$2; shift 2
  STA_KERNEL_SOURCES=$src timeout 100 $S bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:8s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
H="--suite hunyuan --kernel hopper --only 3x3x3"
W="--suite wan --kernel hopper"
I="--suite image --kernel hopper"
for r in 1 2; do
  one S$r "" $H; one NT$r $NT $H; one NTF$r $NTF $H
done
one wS "" $W; one wNT $NT $W; one wNTF $NTF $W
one iS "" $I; one iNT $NT $I; one iNTF $NTF $I
one hS "" --suite hunyuan --kernel hopper; one hNT $NT --suite hunyuan --kernel hopper; one hNTF $NTF --suite hunyuan --kernel hopper
check() { local tag=$1 src=$2; shift 2; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag STA_KERNEL_SOURCES=$src timeout 120 $S verify "$@" > $OUT/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 $OUT/verify-$tag.txt)"; }
for V in NT NTF; do for s in hunyuan wan image; do check $V-$s ${!V} --suite $s --kernel hopper & done; done
wait
tar czf $OUT/verify.tgz -C $OUT $(cd $OUT && ls verify-*.txt) && rm $OUT/verify-*.txt
