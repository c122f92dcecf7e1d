#!/usr/bin/env bash
# Runs from <checkout>/.stage-portable/run.sh (staged copy), with .stage-portable/sta (this branch's release
# binary) and .stage-portable/new/ (this branch's sta_forward_sm80.cu, sta_sm80.cuh, sta_common.cuh).
# One H200. Portable forward kernel A/B (hunyuan suite, bf16 D 128) and its checks.
#   Phase 1, timings alone on the GPU, one process at a time:
#     A  main's binary (b6aa3a3), embedded kernel: 8 warps x 16 rows, 64-key chunks (the default before)
#     B  this branch's binary and kernel, the shape it chooses (4 warps x 32 rows, 64-key chunks, one step)
#     C  same kernel, STA_PORTABLE_SHAPE=32x64x32 (64-key chunks in two 32-key steps)
#     D  same kernel, STA_PORTABLE_SHAPE=32x32x32 (the A100 shape; the previous two-row-block shape)
#     E  same kernel, STA_PORTABLE_SHAPE=16x64x64 (the old default shape: kernel changes alone)
#     FA2/cuDNN dense through torch_anchors.py in the same call
#   Phase 2, checks side by side: verify B on the benchmark layouts and the verify matrix; C, D, E on the
#     hunyuan and image layouts.
cd "$(dirname "$0")/.."
P=.stage-portable
export PYTHONUNBUFFERED=1
mkdir -p -m 700 /tmp/kc-A /tmp/kc-B /tmp/kc-C /tmp/kc-D /tmp/kc-E /tmp/kc-M
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > $OUT/log-time.txt
T0=$(date +%s)
stamp() { echo "== t=$(( $(date +%s) - T0 ))s $*" >> $OUT/log-time.txt; }
bench() { local name=$1; shift; stamp "bench $name"
  env STA_KERNEL_CACHE=/tmp/kc-$name "$@" bench --suite hunyuan --kernel portable --json --repetitions 7 --warmups 2 \
    > /tmp/bench-$name.json 2>> $OUT/log-time.txt; stamp "exit $?"
  python3 -c "import json,sys; d=json.load(open('/tmp/bench-$name.json')); d['variant']='$name'; print(json.dumps(d))" >> $OUT/benches.jsonl; }
bench A timeout 40 .device/sta
bench B timeout 40 env STA_KERNEL_SOURCES=$P/new $P/sta
bench C timeout 40 env STA_KERNEL_SOURCES=$P/new STA_PORTABLE_SHAPE=32x64x32 $P/sta
bench D timeout 40 env STA_KERNEL_SOURCES=$P/new STA_PORTABLE_SHAPE=32x32x32 $P/sta
bench E timeout 40 env STA_KERNEL_SOURCES=$P/new STA_PORTABLE_SHAPE=16x64x64 $P/sta
stamp "torch_anchors dense"
timeout 45 python3 .device/torch_anchors.py --canvas 30x48x80 --tile 6x8x8 --text 256 --heads 24 --dim 128 --dense --reps 5 \
  > $OUT/anchors.txt 2>&1; stamp "exit $?"
DEADLINE=$(( T0 + 186 ))
check() { local name=$1; shift; local log=/tmp/log-verify-$name.txt
  for args in "$@"; do local rem=$(( DEADLINE - $(date +%s) )); [ $rem -gt 3 ] || { echo "== skipped $args" >> $log; continue; }
    echo "== verify $args (${rem}s left)" >> $log
    env STA_KERNEL_CACHE=/tmp/kc-$name STA_KERNEL_SOURCES=$P/new ${SHAPE:+STA_PORTABLE_SHAPE=$SHAPE} \
      timeout $rem $P/sta verify --kernel portable --seed 12 $args >> $log 2>&1; echo "== exit $?" >> $log; done; }
stamp "checks until t=186s"
HUN="--canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3"
SHAPE= check B "--suite image" "$HUN" "--suite wan" "--suite hunyuan" &
SHAPE= check M "" &
SHAPE=32x64x32 check C "$HUN" "--suite image" &
SHAPE=32x32x32 check D "$HUN" "--suite image" &
SHAPE=16x64x64 check E "$HUN" "--suite image" &
wait
stamp "done"
for f in B M C D E; do echo "#### variant $f (SHAPE as in run.sh)"; cat /tmp/log-verify-$f.txt; done > $OUT/log-verify.txt
cd $OUT && python3 - <<'PY'
import json
for line in open("benches.jsonl"):
    f = "?"
    try:
        d = json.loads(line); f = d["variant"]
        print(f, "matmul %.0f" % d["matmul_bf16_tflops"], "  ".join("%s %.2f ms (%.0f TF, %.1f%%)" % (r["problem"].split()[-1], r["median_ms"], r["tflops"], 100 * r["tflops"] / d["matmul_bf16_tflops"]) for r in d["results"]))
    except Exception as e:
        print(f, "unreadable:", e)
PY
grep -h "PASS\|FAIL\|passed\|failed\|== exit" log-verify.txt | sort | uniq -c | sort -rn | head -20; grep -h "flash2\|cudnn\|matmul" anchors.txt | tail -4; grep "== t=" log-time.txt | tail -3
