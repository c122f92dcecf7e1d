#!/usr/bin/env bash
# Final device call: verify, bench, peers, Python/C ABI, end-to-end block, GPU window search smoke test.
cd "$(dirname "$0")"
log=$OUT/log.txt
run() { echo "== $*" | tee -a $log; "$@" 2>&1 | tee -a $log; }
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu --format=csv | tee -a $log
run ./sta verify --json $OUT/verify.json
run ./sta bench --suite hunyuan --kernel hopper --json $OUT/bench-hunyuan.json
run ./sta bench --suite wan --kernel hopper --json $OUT/bench-wan.json
export PYTHONUNBUFFERED=1
run timeout 200 python3 torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --windows 3x3x3
cd ..
export STA_LIBRARY=$PWD/.device/libsta_c.so
run timeout 300 python3 -m pytest -q -p no:cacheprovider python/tests
run timeout 300 python3 python/examples/bench_torch.py --library $STA_LIBRARY
cd .device
run timeout 60 python3 -c "
import torch; from safetensors.torch import save_file
g=torch.Generator(device='cuda').manual_seed(1)
S=2*2*3*384+64
q,k,v=(torch.randn(1,4,S,128,device='cuda',generator=g,dtype=torch.bfloat16) for _ in range(3))
save_file({'q':q,'k':k,'v':v},'cap.safetensors',metadata={'step':'20','layer':'0','prompt':'0'})"
run timeout 120 ./sta search --canvas 12x16x24 --tile 6x8x8 --text 64 cap.safetensors --output $OUT/strategy.json --gpu --max-density 0.5
