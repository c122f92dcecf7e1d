#!/usr/bin/env bash
# Capture → search → apply on the HunyuanVideo 13B architecture (random bf16 weights, 720p): q, k, v of
# step 15, layers 0 and 20 captured after rotary, `sta search --gpu` over seven candidate windows, the
# strategy loaded back into the processors and one step timed with it.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta STA_KERNEL_CACHE=/tmp/k
mkdir -p -m 700 /tmp/k
timeout 270 python3 python/examples/capture_search_apply.py --device cuda --capture-steps 15 --capture-layers 0,20 \
  --candidates 3x3x3,5x3x3,1x6x10,3x3x5,5x1x10,5x6x1,5x5x5 --gpu-search --output $OUT/capture_search_apply.json > $OUT/log.txt 2>&1
echo "== exit $?" >> $OUT/log.txt
tail -40 $OUT/log.txt
