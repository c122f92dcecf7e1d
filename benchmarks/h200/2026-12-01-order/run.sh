#!/bin/bash
# A/B: embedded kernels (A) against .device/v1 (B: forward softmax ordered before the P·V wait; backward
# statistics loaded before the waits). Timings first, then verification of B.
set -u
S=$PWD/.device/sta; V=$PWD/.device/v1
export STA_KERNEL_CACHE=/tmp/kc; mkdir -p -m 700 /tmp/kc
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
t0=$(date +%s)
b() { local tag=$1; shift; echo "== $tag $(( $(date +%s) - t0 ))s"; "$@" --json > $OUT/$tag.json 2> $OUT/$tag.err; echo "rc=$?"; python3 - $OUT/$tag.json <<'P'
import json,sys
d=json.load(open(sys.argv[1])); m=d["matmul_bf16_tflops"]
for r in d["results"]: print(f'{r["problem"]:28s} {r["kernel"]:8s} {r["median_ms"]:9.3f} ms {r["tflops"]:7.1f} TF {100*r["tflops"]/m:5.1f}% of {m:.0f}')
P
}
b hyA  $S bench --suite hunyuan --kernel hopper
STA_KERNEL_SOURCES=$V b hyB  $S bench --suite hunyuan --kernel hopper
b hyA2 $S bench --suite hunyuan --kernel hopper --only 3x3x3
b wanA $S bench --suite wan --kernel hopper
STA_KERNEL_SOURCES=$V b wanB $S bench --suite wan --kernel hopper
b imA $S bench --suite image --kernel hopper
STA_KERNEL_SOURCES=$V b imB $S bench --suite image --kernel hopper
b bwA $S bench --suite hunyuan --kernel hopper --only 3x3x3 --backward
STA_KERNEL_SOURCES=$V b bwB $S bench --suite hunyuan --kernel hopper --only 3x3x3 --backward
b bwA2 $S bench --suite hunyuan --kernel hopper --only 3x3x3 --backward
STA_KERNEL_SOURCES=$V b bwwB $S bench --suite wan --kernel hopper --only 3x3x3 --backward
b bwwA $S bench --suite wan --kernel hopper --only 3x3x3 --backward
echo "== verify $(( $(date +%s) - t0 ))s"
export STA_KERNEL_SOURCES=$V
$S verify --kernel hopper > $OUT/verify_fwd.txt 2>&1; echo "verify fwd rc=$? $(grep -c -i fail $OUT/verify_fwd.txt) fail-lines $(( $(date +%s) - t0 ))s"; tail -3 $OUT/verify_fwd.txt
$S verify --backward --kernel hopper > $OUT/verify_bwd.txt 2>&1; echo "verify bwd rc=$? $(( $(date +%s) - t0 ))s"; tail -3 $OUT/verify_bwd.txt
for s in hunyuan wan image; do $S verify --suite $s --kernel hopper >> $OUT/verify_suites.txt 2>&1; echo "verify $s rc=$? $(( $(date +%s) - t0 ))s"; done
tail -12 $OUT/verify_suites.txt
cd $OUT && tar czf ab.tgz *.json *.err && rm -f *.json *.err; ls
