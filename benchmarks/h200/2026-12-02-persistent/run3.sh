#!/usr/bin/env bash
# One H200. The same binary N as run2.sh (.device/sta): P = its persistent grid (one CTA per
# multiprocessor), NP = the same kernel code with a grid of one CTA per unit (STA_PERSISTENT_CTAS=1000000:
# every CTA takes one ticket, finds no unit and ends). Separates what the persistence does from what the
# new kernel code costs per chunk. Alternating NP P P NP, median of 10 each, 2 s idle before each problem.
cd "$(dirname "$0")/../../.."
N=$PWD/.device/sta
one() { # tag, bench arguments...
  local tag=$1; shift
  local ctas=; [ $tag = NP ] && ctas=1000000
  mkdir -p -m 700 /tmp/kc-x
  env ${ctas:+STA_PERSISTENT_CTAS=$ctas} STA_KERNEL_CACHE=/tmp/kc-x timeout 100 $N bench "$@" --json > /tmp/$tag.json 2>> $OUT/log.txt
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:2s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
for tag in NP P P NP; do
  one $tag --suite hunyuan --kernel hopper --only 3x3x3
  one $tag --suite hunyuan --kernel hopper --only 5x5x5
  one $tag --suite wan --kernel hopper --only 3x5x5
done
