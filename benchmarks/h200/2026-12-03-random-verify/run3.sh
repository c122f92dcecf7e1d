#!/usr/bin/env bash
# Call 3. One H200, the stripped release build of this tree (.device/sta): `sta verify --random` now also
# runs each drawn problem with text as two batch rows with their own drawn valid text lengths (a device
# array). Forward on 12 shards of 16 (seeds 501–512), backward on 12 shards of 10 (seeds 601–612).
cd "$(dirname "$0")/../../.."
N=$PWD/.device/sta
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
mkdir -p $OUT/r
shard() {  # direction count seed
  mkdir -p -m 700 /tmp/kc-$3
  STA_KERNEL_CACHE=/tmp/kc-$3 timeout 480 $N verify $([ $1 = bwd ] && echo --backward) --random $2 --seed $3 --json \
    > $OUT/r/$1-$3.json 2> $OUT/r/$1-$3.log
}
for s in $(seq 501 512); do shard fwd 16 $s & done
for s in $(seq 601 612); do shard bwd 10 $s & done
wait
python3 - $OUT/r <<'P' | tee $OUT/summary3.txt
import glob, json, os, sys
total = failed = rows = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/*.log")):
    lines = open(path).read().splitlines()
    results = [l.strip() for l in lines if l.strip().endswith((": pass", ": FAIL"))]
    bad = [l for l in results if l.endswith("FAIL")]
    total += len(results); failed += len(bad)
    report = path[:-4] + ".json"
    done = os.path.getsize(report) > 0
    if done: rows += sum("text_valid" in c for c in json.load(open(report))["cases"])
    print(f"{os.path.basename(path)[:-4]:8s} {len(results):3d} checks, {len(bad)} failed{'' if done else ', NOT FINISHED'}")
    for l in bad: print("   ", l)
    for l in lines:
        if l.startswith("Error"): print("   ", l)
print(f"all shards: {total} checks ({rows} with per-row text lengths), {failed} failed")
P
tar czf $OUT/random-verify3.tgz -C $OUT r && rm -rf $OUT/r
