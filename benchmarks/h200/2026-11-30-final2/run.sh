#!/usr/bin/env bash
# Two H200s, the final tree of the session.
#   GPU 0 (timings alone on it): the hunyuan suite on both forward kernels against the committed baseline,
#     then capture -> search -> apply on the HunyuanVideo 13B architecture with the device-resident search.
#   GPU 1 (checks, three processes side by side): the verify matrix forward (every kernel), backward on
#     the portable kernels and backward on the Hopper kernel.
cd "$(dirname "$0")/../../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
export PYTHONUNBUFFERED=1 STA_LIBRARY=$PWD/.device/libsta_c.so STA_BINARY=$PWD/.device/sta
mkdir -p -m 700 /tmp/k0 /tmp/k1 /tmp/k2 /tmp/k3
nvidia-smi --query-gpu=index,name,clocks.sm,temperature.gpu --format=csv > $OUT/log-gpu0.txt
S=.device/sta
gpu0() {
  export CUDA_VISIBLE_DEVICES=0 STA_KERNEL_CACHE=/tmp/k0
  local log=$OUT/log-gpu0.txt
  echo "== bench hunyuan" >> $log
  timeout 110 $S bench --suite hunyuan --kernel all --json --compare benchmarks/baselines/hunyuan.json > $OUT/bench-hunyuan.json 2>> $log; echo "== exit $?" >> $log
  echo "== capture_search_apply" >> $log
  timeout 250 python3 python/examples/capture_search_apply.py --device cuda --capture-steps 15 --capture-layers 0,20 \
    --candidates 3x3x3,5x3x3,1x6x10,3x3x5,5x1x10,5x6x1,5x5x5 --gpu-search --workdir /tmp/sta-search \
    --output $OUT/capture_search_apply.json >> $log 2>&1; echo "== exit $?" >> $log
}
check() { local log=$OUT/log-$1.txt; shift; export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=$1; shift
  echo "== $*" >> $log; timeout 290 "$@" >> $log 2>&1; echo "== exit $?" >> $log; }
gpu0 &
check verify /tmp/k1 $S verify --kernel all &
check backward-portable /tmp/k2 $S verify --backward --kernel portable &
check backward-hopper /tmp/k3 $S verify --backward --kernel hopper &
wait
grep -h "REGRESSION\|== \|ratio\| ok$" $OUT/log-gpu0.txt | tail -24
grep -h "search\|step\|capture" $OUT/log-gpu0.txt | tail -12
for f in verify backward-portable backward-hopper; do echo "## $f"; grep -h "passed, \|FAIL\|== " $OUT/log-$f.txt | tail -8; done
