#!/usr/bin/env bash
# One H200, the stripped release build of a68de61 (.device/sta: Hopper forward v14 and its backward, the
# portable kernels in row-major tile order). Issue 9's figure set in one call: the hunyuan backward suite on
# the Hopper kernel against its baseline, beside torch_anchors.py --backward (FlexAttention-STA 3x3x3, cuDNN
# and FlashAttention-2 dense, forward and backward); and the hunyuan forward suite again (Hopper, --compare)
# and the portable kernel's dense forward. The SM clock and power sampled every 100 ms (clocks.csv).
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1 STA_KERNEL_CACHE=/tmp/kc
mkdir -p -m 700 /tmp/kc
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
SMI=$!
timeout 100 $N bench --suite hunyuan --kernel hopper --backward --json --compare benchmarks/baselines/hunyuan-backward.json \
  > $OUT/bench-hunyuan-backward.json 2>> $OUT/log.txt; echo "bench hunyuan backward compare exit $?" | tee -a $OUT/log.txt
timeout 150 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
  --windows 3x3x3 --dense --backward --reps 5 > $OUT/anchors.txt 2>&1; echo "anchors exit $?" | tee -a $OUT/log.txt
timeout 80 $N bench --suite hunyuan --kernel hopper --json --compare benchmarks/baselines/hunyuan.json \
  > $OUT/bench-hunyuan.json 2>> $OUT/log.txt; echo "bench hunyuan compare exit $?" | tee -a $OUT/log.txt
timeout 40 $N bench --suite hunyuan --kernel portable --only dense --json > $OUT/bench-hunyuan-portable.json 2>> $OUT/log.txt
echo "bench hunyuan portable dense exit $?" | tee -a $OUT/log.txt
kill $SMI
for s in hunyuan-backward hunyuan hunyuan-portable; do python3 scripts/bench_lines.py F $OUT/bench-$s.json; done | tee -a $OUT/log.txt
grep -v "^{" $OUT/anchors.txt
