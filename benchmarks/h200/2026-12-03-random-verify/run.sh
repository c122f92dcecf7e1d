#!/usr/bin/env bash
# One H200, the stripped release build of this tree (.device/sta). `sta verify --random` on every GPU
# kernel the card runs (Hopper and portable): the forward on 12 shards of 8 drawn problems (seeds
# 101–112) and the backward on 12 shards of 6 (seeds 201–212), all shards at once, each with its own
# kernel cache; every row of every problem referenced in float64. Logs and JSON in random-verify.tgz.
# Then Nsight Compute (clocks left alone) on one launch of the Hopper forward for hunyuan 3×3×3, 5×5×5
# and dense: elapsed cycles, SM clock, pipe utilisation and L2 hit rate (ncu-*.txt).
cd "$(dirname "$0")/../../.."
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p $OUT/r
for s in $(seq 101 112); do
  mkdir -p -m 700 /tmp/kc-$s
  STA_KERNEL_CACHE=/tmp/kc-$s timeout 360 $N verify --random 8 --seed $s --json > $OUT/r/fwd-$s.json 2> $OUT/r/fwd-$s.log &
done
for s in $(seq 201 212); do
  mkdir -p -m 700 /tmp/kc-$s
  STA_KERNEL_CACHE=/tmp/kc-$s timeout 360 $N verify --backward --random 6 --seed $s --json > $OUT/r/bwd-$s.json 2> $OUT/r/bwd-$s.log &
done
wait
python3 - $OUT/r <<'P' | tee $OUT/summary.txt
import glob, json, os, sys
total = failed = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/*.log")):
    lines = open(path).read().splitlines()
    results = [l.strip() for l in lines if l.strip().endswith((": pass", ": FAIL"))]
    bad = [l for l in results if l.endswith("FAIL")]
    total += len(results); failed += len(bad)
    report = path[:-4] + ".json"
    done = os.path.getsize(report) > 0
    print(f"{os.path.basename(path)[:-4]:8s} {len(results):3d} checks, {len(bad)} failed{'' if done else ', NOT FINISHED'}")
    for l in bad: print("   ", l)
    for l in lines:
        if l.startswith("Error") or "error" in l.lower() and "rel err" not in l: print("   ", l)
print(f"all shards: {total} checks, {failed} failed")
P
tar czf $OUT/random-verify.tgz -C $OUT r && rm -rf $OUT/r
mkdir -p -m 700 /tmp/kc-ncu
for p in 3x3x3 5x5x5 dense; do
  STA_KERNEL_CACHE=/tmp/kc-ncu timeout 60 ncu --clock-control none --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis -k regex:'^sta_forward_sm90$' -c 1 \
    $N bench --suite hunyuan --kernel hopper --only $p --repetitions 1 --warmups 0 > $OUT/ncu-$p.txt 2>&1
  echo "ncu $p exit $?"; grep -E "SM Frequency|Elapsed Cycles|Duration|Highest|highest-utilized|L2 Hit Rate" $OUT/ncu-$p.txt
done
