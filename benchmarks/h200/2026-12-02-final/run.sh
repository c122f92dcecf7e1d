#!/usr/bin/env bash
# One H200. N = .device/sta, the stripped release build of this tree (Hopper forward v9, portable forward
# v4; every timing after 2 s of idle, `sta bench --pause`). The SM clock and power are sampled every 100 ms
# throughout (clocks.csv). Timings: the forward suites on both kernels and the hunyuan backward, each
# against the committed baselines (--compare), and the hunyuan suite once more without pauses;
# torch_anchors.py's peers for the hunyuan layout (FlexAttention-STA forward and backward, cuDNN and
# FlashAttention-2 dense) and the wan layout. Then the checks side by side: the forward matrix on both
# kernels in ten groups, the three suites' layouts on both kernels, the hunyuan backward layout.
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
SMI=$!
mark() { echo "$(date '+%Y/%m/%d %H:%M:%S.%3N') $*" | tee -a $OUT/marks.txt; }
for s in hunyuan wan image; do
  mark "start bench $s"
  timeout 150 $N bench --suite $s --kernel all --json --compare benchmarks/baselines/$s.json \
    > $OUT/bench-$s.json 2>> $OUT/log.txt; echo "bench $s compare exit $?" | tee -a $OUT/summary.txt
done
mark "start bench hunyuan backward"
timeout 150 $N bench --suite hunyuan --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward.json 2>> $OUT/log.txt; echo "bench hunyuan backward compare exit $?" | tee -a $OUT/summary.txt
mark "start bench hunyuan without pauses"
timeout 150 $N bench --suite hunyuan --kernel hopper --pause 0 --json > $OUT/bench-hunyuan-no-pause.json 2>> $OUT/log.txt
mark "start anchors"
{ timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --reps 5; echo "anchors hunyuan exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --backward --reps 5; echo "anchors hunyuan backward exit $?"
  timeout 100 python3 .device/torch_anchors.py --canvas 21x45x80 --tile 6x8x8 --heads 40 --dim 128 \
    --windows 3x3x3 --windows 3x5x5 --reps 5; echo "anchors wan exit $?"; } > $OUT/anchors.txt 2>&1
mark "end anchors"
kill $SMI
grep -h "exit" $OUT/anchors.txt
python3 - $OUT <<'P' | tee -a $OUT/summary.txt
import json, sys
for s in ["hunyuan", "wan", "image", "hunyuan-backward", "hunyuan-no-pause"]:
    d = json.load(open(f"{sys.argv[1]}/bench-{s}.json")); m = d["matmul_bf16_tflops"]
    for r in d["results"]:
        print(f'{s:17s} {r["kernel"]:9s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {r["tflops"]:6.1f} TF  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-$tag
  STA_KERNEL_CACHE=/tmp/kc-$tag timeout 240 $N verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)"; }
mkdir -p /tmp/v
for only in "1D" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
            "NaN" "rows 77,256" "rows 0,50"; do
  check forward-$(echo $only | tr -c 'a-z0-9\n' '_') --kernel all --only "$only" &
done
for s in hunyuan wan image; do check forward-$s --suite $s --kernel all & done
check backward-hunyuan --backward --suite hunyuan --kernel hopper &
wait
grep -h ": pass" /tmp/v/verify-forward-*.txt | wc -l | sed 's/^/forward cases passed: /'
grep -h ": FAIL\|failed" /tmp/v/verify-*.txt | grep -v " 0 failed" | head
tar czf $OUT/verify.tgz -C /tmp/v .
(cd $OUT && tar czf results.tgz bench-*.json clocks.csv marks.txt && rm bench-*.json clocks.csv marks.txt)
