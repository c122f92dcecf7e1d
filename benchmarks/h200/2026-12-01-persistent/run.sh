#!/usr/bin/env bash
# Hopper backward, persistent grid (one CTA per SM, key blocks taken in order from a work counter the
# prepare kernel zeroes; the next block's first chunks and K/V load overlap the current block's last
# products and epilogue). One H200, about 235 s. From the repository root, with carry
# [".device", ".stage-bwd2"]:  bash .stage-bwd2/run.sh
#   base: .device/sta (main's binary, non-persistent kernel, embedded)
#   pers: .stage-bwd2/sta (this branch: persistent grid, embedded kernels)
#   v8p:  .stage-bwd2/sta with STA_KERNEL_SOURCES=.stage-bwd2/v8p (persistent + decoupled warpgroups, v8)
# Phase 1, alone on the GPU: bench hunyuan 3x3x3, wan 3x3x3, image 256 per configuration (median of 10).
# Phase 2, in parallel, capped to end by ~235 s: the whole `verify --backward --kernel hopper` matrix for
# pers (~230 s alone: it may be cut short), and for pers and v8p the hunyuan-shape verify (8 heads), the
# padded wan layout and two small cases (holes, text with valid lengths, per-head windows, f16, D 64).
C=$(cd "$(dirname "$0")" && pwd)
B=$PWD/.device/sta
N=$C/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > $OUT/gpu.txt
run() { # cfg cache args...
  local cfg=$1 cache=$2; shift 2
  case $cfg in
    base) STA_KERNEL_CACHE=$cache timeout $T $B "$@";;
    pers) STA_KERNEL_CACHE=$cache timeout $T $N "$@";;
    v8p)  STA_KERNEL_CACHE=$cache STA_KERNEL_SOURCES=$C/v8p timeout $T $N "$@";;
  esac
}
failed=" "
bench() { # cfg suite only (a configuration whose bench failed or hung is not timed again)
  local cfg=$1; mkdir -p -m 700 /tmp/kc-$cfg-$2
  case "$failed" in *" $cfg "*) return;; esac
  echo "== $cfg $2 $3 t=$SECONDS" >> $OUT/bench.log
  : > /tmp/b.json
  T=30 run $cfg /tmp/kc-$cfg-$2 bench --backward --suite $2 --only $3 --kernel hopper --json > /tmp/b.json 2>> $OUT/bench.log
  local rc=$?
  echo "== exit $rc t=$SECONDS" >> $OUT/bench.log
  [ $rc = 0 ] || failed="$failed$cfg "
  echo "$cfg $2 $(cat /tmp/b.json)" >> $OUT/bench.jsonl
}
for cfg in base pers; do bench $cfg hunyuan 3x3x3; done
for cfg in base pers; do bench $cfg wan 3x3x3; done
for cfg in base pers; do bench $cfg image 256; done
[ $SECONDS -lt 50 ] && for cfg in base pers; do bench $cfg hunyuan 3x3x3; done
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv,noheader >> $OUT/gpu.txt
mkdir -p /tmp/vout
verify() { # cfg name args...
  local cfg=$1 name=$2; shift 2; mkdir -p -m 700 /tmp/kv-$cfg-$name
  local left=$((282 - SECONDS)); [ $left -lt 5 ] && left=5
  T=$left run $cfg /tmp/kv-$cfg-$name verify --backward --kernel hopper "$@" > /tmp/vout/$cfg-$name.txt 2>&1
  echo "$cfg $name exit $? t=$SECONDS: $(grep -h 'PASS\|FAIL\|passed' /tmp/vout/$cfg-$name.txt | tr -s ' ' | tail -2 | tr '\n' '|')" >> $OUT/verify.log
}
verify pers matrix &
for cfg in pers; do
  verify $cfg hun --canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3 --heads 8 &
  verify $cfg wan --canvas 21x45x80 --tile 6x8x8 --window 3x5x5 --heads 4 &
  verify $cfg d64 --canvas 10x16x20 --tile 4x8x8 --text 256 --text-valid 77 --window 1x1x1,3x3x3 --heads 2 --head-dim 64 --dtype f16 &
  verify $cfg t64 --canvas 18x14x14 --tile 4x4x4 --text 16 --text-valid 12 --window 3x3x3,3x3x1 --heads 2 &
done
wait
sort $OUT/verify.log -o $OUT/verify.log
for f in /tmp/vout/*.txt; do echo "## $f"; grep -v "^compil\|^note:" $f; done > $OUT/verify-all.txt
echo "### verify"; cat $OUT/verify.log
echo "### bench (median ms)"
python3 - $OUT/bench.jsonl <<'PY'
import json, sys
for line in open(sys.argv[1]):
    cfg, suite, js = line.split(" ", 2)
    try: d = json.loads(js)
    except Exception: print(cfg, suite, "no json"); continue
    for r in d["results"]:
        print(f'{cfg:5} {r["problem"]:24} {r["median_ms"]:9.3f} ms  min {r["min_ms"]:9.3f}  {r["tflops"]:6.1f} TF/s  {100*r["tflops"]/d["matmul_bf16_tflops"]:5.1f}% of {d["matmul_bf16_tflops"]:.1f}')
PY
echo "t=$SECONDS"
