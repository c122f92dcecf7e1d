#!/usr/bin/env bash
# One H200, the stripped release build of this tree (.device/sta, the kernels embedded: Hopper forward v12,
# V_{i−1} waited for after the Q·K_iᵀ issue). The SM clock and power sampled every 100 ms
# (clocks.csv). Timings: the forward suites on the Hopper kernel (the only one changed), each against the
# committed baselines (--compare); torch_anchors.py's forward peers for the hunyuan layout
# (FlexAttention-STA, cuDNN and FlashAttention-2 dense) and the wan layout; then `sta verify --kernel
# hopper` on the three suites' layouts (after the timings, in parallel).
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
SMI=$!
for s in hunyuan wan image; do
  timeout 150 $N bench --suite $s --kernel hopper --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
{ timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
kill $SMI
grep -h "exit" $OUT/anchors.txt
python3 - $OUT <<'P' | tee -a $OUT/summary.txt
import json, sys
for s in ["hunyuan", "wan", "image"]:
    d = json.load(open(f"{sys.argv[1]}/bench-{s}.json")); m = d["matmul_bf16_tflops"]
    for r in d["results"]:
        print(f'{s:17s} {r["kernel"]:9s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {r["tflops"]:6.1f} TF  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
for s in hunyuan wan image; do
  mkdir -p -m 700 /tmp/kc-v-$s
  STA_KERNEL_CACHE=/tmp/kc-v-$s timeout 250 $N verify --suite $s --kernel hopper > $OUT/verify-$s.txt 2>&1 &
done
wait
for s in hunyuan wan image; do echo "verify $s: $(tail -1 $OUT/verify-$s.txt)" | tee -a $OUT/summary.txt; done
