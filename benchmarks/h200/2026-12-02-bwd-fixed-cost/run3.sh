#!/usr/bin/env bash
# One H200, the stripped release build of 5887506 (.device/sta) with c15's kernels (.device/c15). The SM
# clock and board power sampled every 100 ms (nvidia-smi) while `sta bench --backward` times hunyuan 3×3×3,
# 5×5×5 and dense one after another (median of 10 after 3 warm-ups, 2 s idle before each problem and the
# matrix product), to see whether the longer problems run at a lower clock: the CTA timeline of call 1 put
# 3×3×3 and 5×5×5 at the same cycles per chunk (4,542 / 4,543).
cd "$(dirname "$0")/../../.."
mkdir -p -m 700 /tmp/kc
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 100 > $OUT/clocks.csv &
S=$!
for p in 3x3x3 5x5x5 dense; do
  echo "start $p $(date +%H:%M:%S.%N)" >> $OUT/marks.txt
  STA_KERNEL_SOURCES=$PWD/.device/c15 STA_KERNEL_CACHE=/tmp/kc timeout 150 .device/sta bench --suite hunyuan \
    --kernel hopper --backward --only $p --json > $OUT/bench-$p.json 2>> $OUT/log.txt
  echo "end $p $(date +%H:%M:%S.%N)" >> $OUT/marks.txt
done
kill $S
python3 - $OUT <<'P'
import json, sys, datetime as dt
out = sys.argv[1]
rows = []
for line in open(f"{out}/clocks.csv"):
    f = [x.strip() for x in line.split(",")]
    try: rows.append((dt.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").time(), int(f[1].split()[0]), float(f[2].split()[0])))
    except Exception: pass
marks = [l.split() for l in open(f"{out}/marks.txt")]
for (a, p, t0), (b, _, t1) in zip(marks[::2], marks[1::2]):
    t0 = dt.datetime.strptime(t0[:15], "%H:%M:%S.%f").time(); t1 = dt.datetime.strptime(t1[:15], "%H:%M:%S.%f").time()
    busy = [r for r in rows if t0 <= r[0] <= t1 and r[2] > 300]
    d = json.load(open(f"{out}/bench-{p}.json")); r = d["results"][0]
    cl = sorted(x[1] for x in busy)
    print(f"{p}: {r['median_ms']:.2f} ms, {100 * r['tflops'] / d['matmul_bf16_tflops']:.1f} % of {d['matmul_bf16_tflops']:.0f}; "
          f"samples above 300 W: {len(busy)}, SM clock median {cl[len(cl) // 2] if cl else 0} MHz (min {cl[0] if cl else 0}, max {cl[-1] if cl else 0}), "
          f"power median {sorted(x[2] for x in busy)[len(busy) // 2] if busy else 0:.0f} W")
P
