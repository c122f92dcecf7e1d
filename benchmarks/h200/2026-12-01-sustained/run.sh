#!/usr/bin/env bash
# One H200. N = .device/sta, the release build of this tree: `sta bench` measures the cuBLAS 8192³ rate
# twice, from idle (matmul_bf16_tflops, as before) and after a second of back-to-back products
# (matmul_bf16_sustained_tflops). The SM clock and power are sampled every 50 ms (clocks.csv). Three
# rounds of the forward suites on the Hopper kernel, then the hunyuan backward.
cd "$(dirname "$0")/../../.."
export STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 50 > /tmp/clocks.csv &
SMI=$!
for round in 1 2 3; do
  for s in hunyuan wan image; do
    echo "$(date '+%Y/%m/%d %H:%M:%S.%3N') start $s $round" >> /tmp/marks.txt
    timeout 100 $N bench --suite $s --kernel hopper --json > /tmp/bench-$s-$round.json 2>> /tmp/log.txt
  done
done
echo "$(date '+%Y/%m/%d %H:%M:%S.%3N') start hunyuan backward" >> /tmp/marks.txt
timeout 100 $N bench --suite hunyuan --kernel hopper --backward > /tmp/bench-hunyuan-backward.txt 2>> /tmp/log.txt
echo "$(date '+%Y/%m/%d %H:%M:%S.%3N') end" >> /tmp/marks.txt
kill $SMI
cat /tmp/bench-hunyuan-backward.txt
grep "matrix product" /tmp/log.txt
python3 - <<'P' | tee $OUT/summary.txt
import json, glob
for f in sorted(glob.glob("/tmp/bench-*-?.json")):
    d = json.load(open(f)); m = d["matmul_bf16_tflops"]; s = d["matmul_bf16_sustained_tflops"]
    for r in d["results"]:
        print(f'{f[5:-5]:14s} {r["problem"]:22s} {r["median_ms"]:8.3f} ms {r["tflops"]:6.1f} TF  {100*r["tflops"]/m:5.1f} % of {m:.0f}  {100*r["tflops"]/s:5.1f} % of sustained {s:.0f}')
P
cd /tmp && tar czf $OUT/results.tgz bench-*.json bench-hunyuan-backward.txt clocks.csv marks.txt log.txt
