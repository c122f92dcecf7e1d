#!/usr/bin/env bash
# Hopper backward A/B: embedded kernels (base) against three kernel-source variants (STA_KERNEL_SOURCES).
#   v2: dQ added into the float32 workspace from registers (red.global.add.v2.f32) instead of staging it in
#       shared memory for a bulk reduction; dSᵀ double-buffered; one named barrier per chunk.
#   v3: v2 + one warpgroup per chunk (alternating) computes the whole dQ (m64n128, dSᵀ and K from shared
#       memory) while the other only arrives on the barrier and goes on: the warpgroups run decoupled.
#   v4: v3 + a consumer warpgroup whose 64 keys are all holes or padding text skips its products.
# Phase 1: timings, alone on the GPU. Phase 2: verification on sampled rows (float64), all in parallel.
# Ran as /work/main/.stage-bwd/run.sh with the variants in .stage-bwd/v2 … v4 (here: variants/).
cd "$(dirname "$0")/.."
S=$PWD/.device/sta
ST=$PWD/.stage-bwd
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > $OUT/gpu.txt
run() { # cfg cache command...: the variant's sources through STA_KERNEL_SOURCES (none for base)
  local cfg=$1 cache=$2; shift 2
  if [ $cfg = base ]; then STA_KERNEL_CACHE=$cache "$@"; else STA_KERNEL_CACHE=$cache STA_KERNEL_SOURCES=$ST/$cfg "$@"; fi
}
failed=" "
bench() { # cfg suite only; a configuration that failed once (a hang, an error) is not timed again
  local cfg=$1; mkdir -p -m 700 /tmp/kc-$cfg
  case "$failed" in *" $cfg "*) return;; esac
  echo "== $cfg $2 $3 t=$SECONDS" >> $OUT/bench.log
  : > /tmp/b.json
  run $cfg /tmp/kc-$cfg timeout 25 $S bench --backward --suite $2 --only $3 --kernel hopper --json > /tmp/b.json 2>> $OUT/bench.log
  local rc=$?
  echo "== exit $rc t=$SECONDS" >> $OUT/bench.log
  [ $rc = 0 ] || failed="$failed$cfg "
  echo "$cfg $(cat /tmp/b.json)" >> $OUT/bench.jsonl
}
for cfg in base v2 v3 v4; do bench $cfg hunyuan 3x3x3; bench $cfg wan 3x3x3; done
for cfg in base v4; do [ $SECONDS -lt 80 ] && bench $cfg hunyuan mixed; done
for cfg in base v4; do [ $SECONDS -lt 90 ] && bench $cfg image 256; done
for cfg in base v3; do [ $SECONDS -lt 100 ] && bench $cfg hunyuan 3x3x3; done
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv,noheader >> $OUT/gpu.txt
verify() { # cfg name args...
  local cfg=$1 name=$2; shift 2; mkdir -p -m 700 /tmp/kv-$cfg-$name
  run $cfg /tmp/kv-$cfg-$name timeout $((188 - SECONDS)) $S verify --backward --kernel hopper --seed 9 "$@" > /tmp/vout/$cfg-$name.txt 2>&1
  echo "$cfg $name exit $? t=$SECONDS: $(grep -h 'PASS\|FAIL' /tmp/vout/$cfg-$name.txt | tr -s ' ' | tail -2 | tr '\n' '|')" >> $OUT/verify.log
}
mkdir -p /tmp/vout
for cfg in base v2 v3 v4; do
  verify $cfg hun --canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3 --heads 4 &
  verify $cfg wan --canvas 21x45x80 --tile 6x8x8 --window 3x5x5 --heads 4 &
  verify $cfg d64 --canvas 10x16x20 --tile 4x8x8 --text 256 --text-valid 77 --window 1x1x1,3x3x3 --heads 2 --head-dim 64 --dtype f16 &
  verify $cfg t64 --canvas 18x14x14 --tile 4x4x4 --text 16 --text-valid 12 --window 3x3x3,3x3x1 --heads 2 &
done
wait
sort $OUT/verify.log -o $OUT/verify.log
for f in /tmp/vout/*.txt; do echo "## $f"; grep -v "^compil\|^note:" $f; done > $OUT/verify-all.txt
cat $OUT/verify.log; grep -h "== " $OUT/bench.log | tail -30
python3 - $OUT/bench.jsonl <<'PY'
import json, sys
for line in open(sys.argv[1]):
    cfg, _, js = line.partition(" ")
    try: d = json.loads(js)
    except Exception: print(cfg, "no json"); continue
    for r in d["results"]:
        print(f'{cfg:5} {r["problem"]:24} {r["median_ms"]:9.3f} ms  min {r["min_ms"]:9.3f}  {r["tflops"]:6.1f} TF/s  {100*r["tflops"]/d["matmul_bf16_tflops"]:5.1f}% of {d["matmul_bf16_tflops"]:.1f}')
PY
