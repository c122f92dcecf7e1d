#!/usr/bin/env bash
# Hopper backward candidates, not yet run on a GPU (compile-checked with NVRTC: `sta kernels`, 165 passed,
# no spills, no wgmma serialisation). Same harness as ../run.sh: the embedded kernels (base) against kernel
# sources read through STA_KERNEL_SOURCES, so any `sta` binary of commit b6aa3a3 or later runs it.
#   v7: lockstep as today; dQ issued before dK, so dK's product covers the dQ staging and its barrier.
#   v8: decoupled warpgroups: chunk i's whole dQ (m64n128) by warpgroup i mod 2, staged in shared memory and
#       added by one bulk reduction; the other warpgroup arrives on the dSᵀ barrier and goes on with the next
#       chunk's products (it waits only before overwriting dSᵀ). 3 stages at D 128, today's shared memory.
#   v5: as v8 with two dSᵀ buffers instead of the wait; shared memory allows only 2 stages at D 128.
#   v9: v8 + a consumer warpgroup whose 64 keys are all holes or padding text skips its products.
# Run from the repository root, on one H200 (about 100 s):  bash benchmarks/h200/2026-12-01-bwd/candidates/run.sh
# (device tool: carry [".device"]; it needs .device/sta), or copy this directory to .stage-NAME/ and run
# bash .stage-NAME/run.sh with carry [".device", ".stage-NAME"]. Phase 1 times hunyuan 3x3x3 and wan 3x3x3 per
# configuration alone on the GPU; phase 2 verifies every configuration in parallel (sampled float64 rows
# on the hunyuan and wan layouts, two small cases with holes, text, per-head windows, f16, D 64).
# Run from the repository root (.device/sta there); the candidates are the directories beside this script.
C=$(cd "$(dirname "$0")" && pwd)
S=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > $OUT/gpu.txt
run() { # cfg cache command...
  local cfg=$1 cache=$2; shift 2
  if [ $cfg = base ]; then STA_KERNEL_CACHE=$cache "$@"; else STA_KERNEL_CACHE=$cache STA_KERNEL_SOURCES=$C/$cfg "$@"; fi
}
failed=" "
bench() { # cfg suite only
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
for cfg in base v7 v8 v5 v9; do bench $cfg hunyuan 3x3x3; bench $cfg wan 3x3x3; done
for cfg in base v8; do [ $SECONDS -lt 80 ] && bench $cfg hunyuan mixed; done
for cfg in base v8; do [ $SECONDS -lt 90 ] && bench $cfg image 256; done
for cfg in base v8; do [ $SECONDS -lt 100 ] && bench $cfg hunyuan 3x3x3; done
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv,noheader >> $OUT/gpu.txt
verify() { # cfg name args...
  local cfg=$1 name=$2; shift 2; mkdir -p -m 700 /tmp/kv-$cfg-$name
  run $cfg /tmp/kv-$cfg-$name timeout $((170 - SECONDS)) $S verify --backward --kernel hopper --seed 9 "$@" > /tmp/vout/$cfg-$name.txt 2>&1
  echo "$cfg $name exit $? t=$SECONDS: $(grep -h 'PASS\|FAIL\|passed, ' /tmp/vout/$cfg-$name.txt | tr -s ' ' | tail -2 | tr '\n' '|')" >> $OUT/verify.log
}
mkdir -p /tmp/vout
for cfg in v7 v8 v5 v9; do
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
