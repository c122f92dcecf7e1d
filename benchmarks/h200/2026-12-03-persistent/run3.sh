#!/usr/bin/env bash
# Call 3, on the persistent grid (one CTA per multiprocessor): P2 (P with the next unit's ticket taken as
# soon as the current unit's query block is issued, in flight while its chunks load) and S (no counter: a
# static round-robin of the units over the CTAs, unit + gridDim.x; balanced on wan and image, not on
# hunyuan, whose 48 text blocks each cost ~11 video blocks), against A (v12) and P. P2 and S through
# STA_KERNEL_SOURCES on P's binary.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res3
one() { # tag, bench arguments...
  local tag=$1; shift
  local bin=.device/P/sta src=
  [ $tag = A ] && bin=.device/sta
  [ $tag = P2 -o $tag = S ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc3-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc3-$tag timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> /tmp/res3/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary3.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res3/bench-$tag-$(date +%s%N).json
}
for tag in A P2 S P S P2 A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for s in wan image; do for tag in A P2 S S P2 A; do one $tag --suite $s --kernel hopper; done; done
for only in 5x5x5 dense; do for tag in A S P; do one $tag --suite hunyuan --kernel hopper --only $only; done; done
tar czf $OUT/results3.tgz -C /tmp res3
