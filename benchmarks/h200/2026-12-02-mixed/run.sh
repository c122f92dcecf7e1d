#!/usr/bin/env bash
# One H200. N = .device/sta, the release build of 2ab0ab3 (Hopper forward v9). Where hunyuan's mixed
# windows lose their share of the matrix rate: the hunyuan layout (30x48x80, tile 6x8x8, 256 text, 24
# heads, D 128, bf16) with each of the mixed problem's five windows on every head, the mixed list in the
# suite's order, reversed, and interleaved, and 3x3x3 as the reference; two rounds, median of 10 each.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
one() { # label, window
  timeout 100 $N bench --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --kernel hopper --window "$2" --json \
    > /tmp/one.json 2>> $OUT/log.txt
  python3 - /tmp/one.json "$1" <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:12s} {r["median_ms"]:9.3f} ms  {r["tflops"]:6.1f} TF  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
}
SUITE="5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1"
REVERSED="5x6x1,5x1x10*2,3x3x5*3,1x6x10*8,5x3x3*10"
MIXED="5x3x3,1x6x10,5x3x3,1x6x10,5x3x3,3x3x5,1x6x10,5x3x3,5x1x10,1x6x10,5x3x3,3x3x5,1x6x10,5x3x3,5x6x1,1x6x10,5x3x3,3x3x5,1x6x10,5x3x3,5x1x10,1x6x10,5x3x3,5x3x3"
for round in 1 2; do
  for w in 3x3x3 5x3x3 1x6x10 3x3x5 5x1x10 5x6x1; do one $w $w; done
  one suite "$SUITE"; one reversed "$REVERSED"; one interleaved "$MIXED"
done
