#!/usr/bin/env bash
# Call 2. One H200, the stripped release build of this tree with per-head visit orders (.device/sta, its
# embedded kernels B). G = v13's order (the grid's longest axis outermost for every head; per-head.patch's
# kernels with visited_tile ignoring the order passed), through STA_KERNEL_SOURCES=.device/G. A/B
# alternating (median of 10 each, 0.5 s pauses: this session's device time was short), then B's checks.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local src=; [ $tag != B ] && src=$PWD/.device/$tag
  mkdir -p -m 700 /tmp/kc-$tag
  env ${src:+STA_KERNEL_SOURCES=$src} STA_KERNEL_CACHE=/tmp/kc-$tag timeout 100 .device/sta bench "$@" --json \
    > /tmp/$tag.json 2>> /tmp/res/log.txt
  python3 scripts/bench_lines.py $tag /tmp/$tag.json | tee -a $OUT/summary2.txt
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in G B B G; do one $tag --suite hunyuan --kernel hopper --only mixed --pause 500; done
for tag in G B; do one $tag --suite hunyuan --kernel hopper --only mixed --backward --pause 500; done

check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 70 .device/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "B verify $tag exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary2.txt; }
for s in 901 902; do check random-fwd-$s --kernel hopper --random 8 --seed $s & done
for s in 911 912; do check random-bwd-$s --kernel hopper --backward --random 6 --seed $s & done
check fwd-text --kernel hopper --only "text 50/64" & check bwd-rows --kernel hopper --backward --only "rows" &
check hunyuan-mixed --suite hunyuan --kernel hopper --only mixed &
wait
tar czf $OUT/results2.tgz -C /tmp res
