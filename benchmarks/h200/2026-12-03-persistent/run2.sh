#!/usr/bin/env bash
# Call 2, a diagnosis of P's per-unit cost, all on one CTA per unit (STA_PERSISTENT_CTAS above the unit
# count): P1 (P's kernels), D1 (P1 with v12's epilogue, O staged through the query block's shared memory;
# safe only with one unit per CTA), D2 (D1 without the work counter: no ticket, no last-CTA reset),
# against A (v12, .device/sta). D1 and D2 through STA_KERNEL_SOURCES on P's binary.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res2
one() { # tag, bench arguments...
  local tag=$1; shift
  local bin=.device/P/sta src=
  [ $tag = A ] && bin=.device/sta
  [ $tag = D1 -o $tag = D2 ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc2-$tag
  env STA_PERSISTENT_CTAS=100000000 ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc2-$tag timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> /tmp/res2/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary2.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res2/bench-$tag-$(date +%s%N).json
}
for tag in A P1 D1 D2 D2 D1 P1 A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for tag in A P1 D1 D2 A; do one $tag --suite image --kernel hopper; done
tar czf $OUT/results2.tgz -C /tmp res2
