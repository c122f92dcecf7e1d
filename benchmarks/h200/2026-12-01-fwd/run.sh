#!/usr/bin/env bash
# Forward Hopper kernel A/B, one H200: the embedded kernels (A) against three source variants read through
# STA_KERNEL_SOURCES from .stage-fwd/v1..v3 (v1: mask word read before the scores exist + tree row max;
# v2: v1 + split blocks of <= 64 rows; v3: v2 + a quarter of the exponentials by polynomial).
# Phase 1: verify each variant (matrix, wan suite, hunyuan canvas), three processes side by side.
# Phase 2: timings alone on the GPU: wan suite, hunyuan 3x3x3, image suite; A first and A again at the end.
cd "$(dirname "$0")/.."
T0=$(date +%s)
S=$PWD/.device/sta; V=$PWD/.stage-fwd; W=/tmp/fwd-out; mkdir -p $W
mkdir -p -m 700 /tmp/kc-A /tmp/kc-v1 /tmp/kc-v2 /tmp/kc-v3
el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > $OUT/log.txt
ver() { local v=$1 log=$OUT/verify-$1.txt; shift
  for args in "$@"; do
    local left=$(( 100 - $(el) )); [ $left -gt 85 ] && left=85
    [ $left -lt 8 ] && { echo "== skipped (time): $args" >> $log; continue; }
    echo "== [$(el) s] $args" >> $log
    STA_KERNEL_CACHE=/tmp/kc-$v STA_KERNEL_SOURCES=$V/$v timeout $left $S $args >> $log 2>&1
    echo "== exit $? [$(el) s]" >> $log
  done; }
W3="verify --suite wan --kernel hopper"
H3="verify --canvas 30x48x80 --tile 6x8x8 --text 256 --window 3x3x3 --kernel hopper"
M="verify --kernel hopper"
ver v2 "$W3" "$M" "$H3" &
ver v3 "$W3" "$M" "$H3" &
ver v1 "$W3" "$H3" &
wait
echo "phase 1 done at $(el) s" >> $OUT/log.txt
bench() { local tag=$1 suite=$2; shift 2
  [ $(el) -gt 186 ] && { echo "skip $tag $suite (time)" >> $OUT/log.txt; return; }
  local cache=/tmp/kc-$tag; [ $tag = A2 ] && cache=/tmp/kc-A
  if [ ${tag:0:1} = v ]; then export STA_KERNEL_SOURCES=$V/$tag; else unset STA_KERNEL_SOURCES; fi
  local left=$(( 194 - $(el) )); [ $left -gt 40 ] && left=40
  STA_KERNEL_CACHE=$cache timeout $left $S bench --suite $suite "$@" --kernel hopper --json > $W/bench-$tag-$suite.json 2>> $OUT/log.txt
  echo "bench $tag $suite exit $? [$(el) s]" >> $OUT/log.txt
  python3 - $W/bench-$tag-$suite.json $tag $OUT/bench.jsonl >> $OUT/bench.txt <<'PY'
import json,sys
try: d=json.load(open(sys.argv[1]))
except Exception as e: print(sys.argv[2],"no json",e); sys.exit()
open(sys.argv[3],"a").write(json.dumps({"variant":sys.argv[2],**d})+"\n")
for r in d["results"]:
    print("%-3s %-22s %9.3f ms (min %8.3f) %6.1f TFLOP/s %5.1f %% of matmul %.1f" % (sys.argv[2], r["problem"], r["median_ms"], r["min_ms"], r["tflops"], 100*r["tflops"]/d["matmul_bf16_tflops"], d["matmul_bf16_tflops"]))
PY
}
for tag in A v1 v2 v3; do bench $tag wan; bench $tag hunyuan --filter 3x3x3; done
for tag in A v2 v3 A2; do bench $tag image; done
bench A2 wan
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv >> $OUT/log.txt
echo "end at $(el) s" >> $OUT/log.txt
for v in v1 v2 v3; do echo "## $v"; grep -h "passed, \|FAIL\|== " $OUT/verify-$v.txt | tail -12; done
cat $OUT/bench.txt; cat $OUT/log.txt | tail -30
