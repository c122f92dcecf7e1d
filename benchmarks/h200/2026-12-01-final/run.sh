#!/usr/bin/env bash
# Two H200s, the final tree of 2026-12-01 (binaries built here with `swift build -c release
# --static-swift-stdlib`, stripped: .device/sta; .device/sta-b6aa3a3 is the day's first binary).
#   GPU 0, timings alone on it: every suite on both forward kernels against its baseline; the portable
#     forward A/B (the previous default shape in the first binary, the new default, and shapes forced with
#     STA_PORTABLE_SHAPE); the Hopper backward on the hunyuan suite; torch_anchors.py (FlexAttention forward
#     and backward, cuDNN and FlashAttention-2 dense) in the same call.
#   GPU 1, checks side by side: the verify matrix forward (every kernel), backward on each kernel, and the
#     three suites' benchmark layouts on sampled rows (every kernel).
cd "$(dirname "$0")/../../.."
export PYTHONUNBUFFERED=1
S=$PWD/.device/sta
mkdir -p -m 700 /tmp/k0 /tmp/k0-old /tmp/kC /tmp/kD /tmp/kE /tmp/k1 /tmp/k2 /tmp/k3 /tmp/k4 /tmp/k5 /tmp/k6
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > $OUT/log-gpu0.txt
gpu0() {
  export CUDA_VISIBLE_DEVICES=0
  local log=$OUT/log-gpu0.txt
  for s in hunyuan wan image; do
    echo "== bench $s" >> $log
    STA_KERNEL_CACHE=/tmp/k0 timeout 100 $S bench --suite $s --kernel all --json --compare benchmarks/baselines/$s.json > $OUT/bench-$s.json 2>> $log
    echo "== exit $?" >> $log
  done
  ab() { local name=$1 cache=$2; shift 2; echo "== portable $name" >> $log
    STA_KERNEL_CACHE=$cache timeout 60 "$@" bench --suite hunyuan --kernel portable --repetitions 7 --warmups 2 --json > /tmp/ab-$name.json 2>> $log
    echo "== exit $?" >> $log
    python3 -c "import json; d=json.load(open('/tmp/ab-$name.json')); d['variant']='$name'; print(json.dumps(d))" >> $OUT/portable-ab.jsonl; }
  ab A-previous-16x64 /tmp/k0-old .device/sta-b6aa3a3
  ab C-32x64x32 /tmp/kC env STA_PORTABLE_SHAPE=32x64x32 $S
  ab D-32x32x32 /tmp/kD env STA_PORTABLE_SHAPE=32x32x32 $S
  ab E-16x64x64 /tmp/kE env STA_PORTABLE_SHAPE=16x64x64 $S
  echo "== bench --backward hunyuan" >> $log
  STA_KERNEL_CACHE=/tmp/k0 timeout 60 $S bench --backward --suite hunyuan --kernel hopper --json > $OUT/bench-backward-hunyuan.json 2>> $log
  echo "== exit $?" >> $log
  echo "== torch_anchors" >> $log
  timeout 120 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 \
    --windows 3x3x3 --dense --backward --reps 5 > $OUT/anchors-hunyuan.txt 2>&1
  echo "== exit $?" >> $log
}
check() { local log=$OUT/log-$1.txt; shift; export CUDA_VISIBLE_DEVICES=1 STA_KERNEL_CACHE=$1; shift
  echo "== $*" >> $log; timeout 340 "$@" >> $log 2>&1; echo "== exit $?" >> $log; }
gpu0 &
check verify /tmp/k1 $S verify --kernel all &
check backward-portable /tmp/k2 $S verify --backward --kernel portable &
check backward-hopper /tmp/k3 $S verify --backward --kernel hopper &
( check suites /tmp/k4 $S verify --suite image; check suites /tmp/k4 $S verify --suite wan ) &
check suite-hunyuan /tmp/k5 $S verify --suite hunyuan &
check backward-suite /tmp/k6 $S verify --backward --canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3 --heads 8 &
wait
grep -h "REGRESSION\|== \|ratio" $OUT/log-gpu0.txt | tail -30
for f in verify backward-portable backward-hopper suites suite-hunyuan backward-suite; do echo "## $f"; grep -h "passed, \|FAIL\|== " $OUT/log-$f.txt | tail -8; done
python3 - <<'PY'
import json, os
out = os.environ["OUT"]
for line in open(f"{out}/portable-ab.jsonl"):
    d = json.loads(line)
    print(d["variant"], "matmul %.0f" % d["matmul_bf16_tflops"], "  ".join("%s %.2f ms" % (r["problem"].split()[-1], r["median_ms"]) for r in d["results"]))
for s in ["hunyuan", "wan", "image"]:
    d = json.load(open(f"{out}/bench-{s}.json"))
    print(s, "matmul %.0f" % d["matmul_bf16_tflops"], "  ".join("%s/%s %.2f ms %.1f%%" % (r["problem"].split(" ", 1)[1], r["kernel"][0], r["median_ms"], 100 * r["tflops"] / d["matmul_bf16_tflops"]) for r in d["results"]))
PY
tail -12 $OUT/anchors-hunyuan.txt
