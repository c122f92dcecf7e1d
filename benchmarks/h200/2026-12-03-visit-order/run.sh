#!/usr/bin/env bash
# One H200, the stripped release build of this tree before the change (.device/sta; embedded kernels A =
# 2026-12-03-final6's). B = A with visit-order.patch, through STA_KERNEL_SOURCES=.device/B. A/B
# alternating (sta bench, median of 10 each), Nsight Compute's L2 and DRAM reading of one forward launch
# of each, then B's checks (Hopper kernels): the matrix cases whose grids change order, forward and
# backward, 32 + 24 drawn problems (`verify --random`), and the hunyuan and wan layouts.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != A ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 150 .device/sta bench "$@" --json \
    > /tmp/$tag.json 2>> /tmp/res/log.txt
  python3 scripts/bench_lines.py $tag /tmp/$tag.json | tee -a $OUT/summary.txt
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in A B B A A B; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for tag in A B B A; do one $tag --suite hunyuan --kernel hopper --only 5x5x5; done
for tag in A B B A; do one $tag --suite wan --kernel hopper; done
for tag in A B B A; do one $tag --suite hunyuan --kernel hopper --only 3x3x3 --backward; done
for tag in B A; do
  src=; [ $tag != A ] && src=$PWD/.device/$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 60 ncu --clock-control none \
    --section SpeedOfLight --section MemoryWorkloadAnalysis -k regex:'^sta_forward_sm90$' -c 1 \
    .device/sta bench --suite hunyuan --kernel hopper --only 3x3x3 --repetitions 1 --warmups 0 > /tmp/res/ncu-$tag.txt 2>&1
  echo "ncu $tag: $(grep -E 'Duration|DRAM Throughput|L2 Hit Rate' /tmp/res/ncu-$tag.txt | tr -s ' ' | tr '\n' ';')" | tee -a $OUT/summary.txt
done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_SOURCES=$PWD/.device/B STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "B verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
for only in "text 50/64" "rows"; do  # the matrix cases whose grids change order (2×2×3, 3×2×3)
  check fwd-"${only%% *}" --kernel hopper --only "$only" & check bwd-"${only%% *}" --kernel hopper --backward --only "$only" &
done
for s in 701 702 703 704; do check random-fwd-$s --kernel hopper --random 8 --seed $s & done
for s in 801 802 803 804; do check random-bwd-$s --kernel hopper --backward --random 6 --seed $s & done
for s in hunyuan wan; do check $s --suite $s --kernel hopper & done
wait
tar czf $OUT/results.tgz -C /tmp res
