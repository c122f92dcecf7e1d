#!/usr/bin/env bash
# One H200. .device/sta = the stripped release build of 48e824c (the sources of the session's last commit):
# Hopper forward v9, the matrix product timed after the same 2 s idle as each problem. The three suites on
# the Hopper kernel against the committed baselines (--compare, shares now against the idle matrix rate),
# then torch_anchors.py's FlexAttention-STA for the hunyuan and wan layouts. Device time was short: the
# portable kernel, the backward and the checks are not in this call (the kernels are those of
# 2026-12-02-final2, which has them).
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
for s in hunyuan wan image; do
  timeout 120 $N bench --suite $s --kernel hopper --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
python3 - $OUT <<'P' | tee -a $OUT/summary.txt
import json, sys
for s in ["hunyuan", "wan", "image"]:
    d = json.load(open(f"{sys.argv[1]}/bench-{s}.json")); m = d["matmul_bf16_tflops"]
    for r in d["results"]:
        print(f'{s:8s} {r["kernel"]:7s} {r["problem"]:22s} {r["median_ms"]:9.3f} ms  {r["tflops"]:6.1f} TF  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
{ timeout 80 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --reps 5; echo "anchors hunyuan exit $?"
  timeout 80 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
grep -h "exit\|flex" $OUT/anchors.txt | grep -v "^{" | tee -a $OUT/summary.txt
