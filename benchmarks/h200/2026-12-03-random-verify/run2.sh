#!/usr/bin/env bash
# Call 2. One H200, the stripped release build of this tree (.device/sta, with the cancellation floor).
# `sta verify --random` on both GPU kernels again, on new seeds and twice the problems: the forward on 12
# shards of 16 (seeds 301–312), the backward on 12 shards of 10 (seeds 401–412), plus call 1's shard 203
# (the one-key queries); then `sta bench --suite hunyuan --kernel hopper` alone with the SM clock and power
# sampled every 20 ms and each progress line of the bench time-stamped, to read the clock each problem ran at.
cd "$(dirname "$0")/../../.."
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p $OUT/r
shard() {  # direction count seed
  mkdir -p -m 700 /tmp/kc-$3
  STA_KERNEL_CACHE=/tmp/kc-$3 timeout 420 $N verify $([ $1 = bwd ] && echo --backward) --random $2 --seed $3 --json \
    > $OUT/r/$1-$3.json 2> $OUT/r/$1-$3.log
}
for s in $(seq 301 312); do shard fwd 16 $s & done
for s in $(seq 401 412) 203; do shard bwd $([ $s = 203 ] && echo 6 || echo 10) $s & done
wait
python3 - $OUT/r <<'P' | tee $OUT/summary2.txt
import glob, os, sys
total = failed = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/*.log")):
    lines = open(path).read().splitlines()
    results = [l.strip() for l in lines if l.strip().endswith((": pass", ": FAIL"))]
    bad = [l for l in results if l.endswith("FAIL")]
    total += len(results); failed += len(bad)
    done = os.path.getsize(path[:-4] + ".json") > 0
    print(f"{os.path.basename(path)[:-4]:8s} {len(results):3d} checks, {len(bad)} failed{'' if done else ', NOT FINISHED'}")
    for l in bad: print("   ", l)
    for l in lines:
        if l.startswith("Error"): print("   ", l)
print(f"all shards: {total} checks, {failed} failed")
P
tar czf $OUT/random-verify2.tgz -C $OUT r && rm -rf $OUT/r
mkdir -p -m 700 /tmp/kc-bench
sleep 20
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 20 > $OUT/clocks2.csv &
SMI=$!
STA_KERNEL_CACHE=/tmp/kc-bench timeout 150 $N bench --suite hunyuan --kernel hopper --json > $OUT/bench-hunyuan.json \
  2> >(python3 -c 'import sys, time
for line in sys.stdin: print(time.strftime("%H:%M:%S", time.localtime()) + f"{time.time() % 1:.3f}"[1:], line, end="", flush=True)' > $OUT/bench-progress.txt)
echo "bench exit $?"
sleep 1; kill $SMI
python3 scripts/bench_lines.py H $OUT/bench-hunyuan.json
