#!/usr/bin/env bash
# One H200. N = .device/sta, the stripped release build of cf53f1b (Hopper forward v9, kernels unchanged since
# 2026-12-02-final3). Three things in one call:
# 1. Where a short query block's time goes: the hunyuan 3×3×3 and 5×5×5 problems once each with `timeline/`
#    (the v9 sources plus clock64 stamps of one consumer thread, printed for every CTA on SMs 0 and 1:
#    entry, barriers initialised, Q in, K0 in, first softmax done, last P·V done, epilogue done, the
#    producer's last copy issued, chunks), then the hunyuan layout with windows and text lengths that change
#    the chunks per block (54 … 252) to fit a fixed cost per CTA.
# 2. The suites on both kernels and the hunyuan backward against the committed baselines (--compare; the
#    JSON files are the new baselines' source, with the matrix product timed after the same pause).
# 3. torch_anchors.py's peers for the hunyuan layout (forward, backward) and the wan layout.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc /tmp/kc-t
N=$PWD/.device/sta
benchmarks/h200/2026-12-02-cta-timeline/variants.sh /tmp/variants
T=/tmp/variants/timeline
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee $OUT/gpu.txt
for w in 3x3x3 5x5x5; do
  STA_KERNEL_SOURCES=$T STA_KERNEL_CACHE=/tmp/kc-t timeout 100 $N bench --suite hunyuan --kernel hopper --only $w \
    --repetitions 1 --warmups 0 > $OUT/timeline-$w.txt 2>&1; echo "timeline $w exit $?" | tee -a $OUT/summary.txt
done
sweep() { # tag, bench arguments...
  local tag=$1; shift
  timeout 100 $N bench --canvas 30x48x80 --tile 6x8x8 --heads 24 --kernel hopper --json "$@" > $OUT/sweep-$tag.json 2>> $OUT/log.txt
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); m=d['matmul_bf16_tflops']; r=d['results'][0]; print(f\"sweep {sys.argv[2]:14s} {r['median_ms']:9.3f} ms {r['tflops']:6.1f} TF {100*r['tflops']/m:5.1f} % of {m:.0f}\")" $OUT/sweep-$tag.json $tag | tee -a $OUT/summary.txt
}
sweep 3x3x3-t0 --window 3x3x3
sweep 3x3x3-t192 --window 3x3x3 --text 192
sweep 3x3x3-t256 --window 3x3x3 --text 256
sweep 3x3x5-t256 --window 3x3x5 --text 256
sweep 3x5x5-t256 --window 3x5x5 --text 256
sweep 5x5x5-t256 --window 5x5x5 --text 256
sweep 3x3x3-t256b --window 3x3x3 --text 256
for s in hunyuan wan image; do
  timeout 150 $N bench --suite $s --kernel all --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
timeout 150 $N bench --suite hunyuan --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward.json 2>> $OUT/log.txt; echo "bench hunyuan backward compare exit $?" | tee -a $OUT/summary.txt
{ timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --backward --reps 5; echo "anchors hunyuan backward exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
grep -h "exit" $OUT/anchors.txt
python3 - $OUT <<'P' | tee -a $OUT/summary.txt
import json, sys
for s in ["hunyuan", "wan", "image", "hunyuan-backward"]:
    d = json.load(open(f"{sys.argv[1]}/bench-{s}.json")); m = d["matmul_bf16_tflops"]
    for r in d["results"]:
        print(f'{s:17s} {r["kernel"]:9s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {r["tflops"]:6.1f} TF  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
grep -c "^T " $OUT/timeline-*.txt
