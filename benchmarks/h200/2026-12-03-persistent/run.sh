#!/usr/bin/env bash
# P (the persistent Hopper forward, .device/P/sta) against A (v12, .device/sta, the stripped release build
# of 679c84b), alternating per problem; P1 = P's binary with one CTA per unit. Then P's checks, with the
# default grid and with STA_PERSISTENT_CTAS=3.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
mkdir -p /tmp/res
one() { # tag, bench arguments...
  local tag=$1; shift
  local bin=.device/sta extra=
  [ $tag = P ] && bin=.device/P/sta
  [ $tag = P1 ] && bin=.device/P/sta && extra=STA_PERSISTENT_CTAS=100000000
  mkdir -p -m 700 /tmp/kc-${bin//\//_}
  [ $tag != A ] && [ -e /tmp/P-broken ] && return
  env $extra STA_KERNEL_CACHE=/tmp/kc-${bin//\//_} timeout 100 $bin bench "$@" --json > /tmp/$tag.json 2>> /tmp/res/log.txt
  [ $? = 124 ] && echo "$tag timed out: P runs skipped from here" | tee -a $OUT/summary.txt && touch /tmp/P-broken && return
  python3 - /tmp/$tag.json $tag <<'P' | tee -a $OUT/summary.txt
import json, sys
d = json.load(open(sys.argv[1])); m = d["matmul_bf16_tflops"]
for r in d["results"]:
    print(f'{sys.argv[2]:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / m:5.1f} % of {m:.0f}')
P
  cp /tmp/$tag.json /tmp/res/bench-$tag-$(date +%s%N).json
}
for tag in A P P1 P A P1; do one $tag --suite hunyuan --kernel hopper --only 3x3x3; done
for only in mixed 5x5x5; do for tag in A P P A; do one $tag --suite hunyuan --kernel hopper --only $only; done; done
for s in wan image; do for tag in A P P1 P A; do one $tag --suite $s --kernel hopper; done; done
for tag in A P; do one $tag --suite hunyuan --kernel hopper --only dense; done
check() { local tag=$1; shift; mkdir -p -m 700 /tmp/kc-v-$tag
  env $EXTRA STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 200 .device/P/sta verify "$@" > /tmp/res/verify-$tag.txt 2>&1
  echo "P verify $tag ${EXTRA:-default grid} exit $?: $(tail -1 /tmp/res/verify-$tag.txt)" | tee -a $OUT/summary.txt; }
for EXTRA in "" STA_PERSISTENT_CTAS=3; do
  n=0
  for only in "1D 1000" "2D 48x40" "text 50/64" "text 16 w1x3x1" "clamped" "scale 0.05" "large finite" \
              "NaN contract" "rows 77,256" "rows 0,50"; do
    n=$((n + 1)); check matrix-$n${EXTRA:+-3} --kernel hopper --only "$only" &
  done
  [ -z "$EXTRA" ] && for s in hunyuan wan image; do check $s --suite $s --kernel hopper & done
  wait
done
tar czf $OUT/results.tgz -C /tmp res
