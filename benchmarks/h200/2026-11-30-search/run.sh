#!/usr/bin/env bash
# The device-resident window search on one H200: (1) `sta search --check` (GPU against the CPU reference) on
# small synthetic captures, (2) capture → search → apply on the HunyuanVideo 13B architecture with the same
# 7 candidates as ../2026-11-30-capture (41.3 s per capture there), (3) the same two captures searched over
# all 71 default candidates. The progress lines of `sta search` split each capture into read-and-upload and
# device seconds.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta STA_KERNEL_CACHE=/tmp/k
mkdir -p -m 700 /tmp/k
log=$OUT/log.txt
step() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; echo "== exit ${PIPESTATUS[0]}" | tee -a $log; }
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv | tee -a $log
step timeout 150 python3 scripts/search_check.py --sta $STA_BINARY
step timeout 270 python3 python/examples/capture_search_apply.py --device cuda --capture-steps 15 --capture-layers 0,20 \
  --candidates 3x3x3,5x3x3,1x6x10,3x3x5,5x1x10,5x6x1,5x5x5 --gpu-search --workdir /tmp/sta-search --keep \
  --output $OUT/capture_search_apply.json
step timeout 120 $STA_BINARY search --gpu --canvas 30x48x80 --tile 6x8x8 --text 256 --full-steps 15 \
  --output /tmp/sta-search/all-candidates.json --json /tmp/sta-search/captures
