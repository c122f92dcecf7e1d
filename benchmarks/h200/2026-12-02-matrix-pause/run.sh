#!/usr/bin/env bash
# One H200. Does the matrix-product rate that shares are taken against depend on what ran just before?
# A = .device/sta-A (dda2c2a: the product timed at once after start-up), N = .device/sta (the working
# tree: the product timed after the same 2 s of idle as each problem). `sta bench --suite hunyuan --kernel
# hopper --only 3x3x3`, processes back to back with no idle between them (as in every A/B script), in the
# order A N A N A N N A.
cd "$(dirname "$0")/../../.."
mkdir -p -m 700 /tmp/kc
for tag in A N A N A N N A; do
  bin=$PWD/.device/sta; [ $tag = A ] && bin=$PWD/.device/sta-A
  STA_KERNEL_CACHE=/tmp/kc timeout 100 $bin bench --suite hunyuan --kernel hopper --only 3x3x3 --json > /tmp/r.json 2>> $OUT/log.txt
  python3 - /tmp/r.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]} matrix {m:6.1f}  {r["problem"]:16s} {r["median_ms"]:8.3f} ms  {100 * r["tflops"] / m:5.1f} %')
P
done
