#!/usr/bin/env bash
# One H200, the same binary as run.sh (a68de61). `sta verify --suite` on the three suites' layouts, every GPU
# kernel (Hopper and portable), forward and backward, and the matrix's per-row text backward cases on the
# Hopper kernel, side by side; each table in verify-*.txt (packed in verify.tgz), the last lines in checks.txt.
cd "$(dirname "$0")/../../.."
N=$PWD/.device/sta
mkdir -p /tmp/v
check() {  # tag, verify's arguments
  local tag=$1; shift
  mkdir -p -m 700 /tmp/kc-v-$tag
  STA_KERNEL_CACHE=/tmp/kc-v-$tag timeout 215 $N verify "$@" > /tmp/v/verify-$tag.txt 2>&1
  echo "verify $tag exit $?: $(tail -1 /tmp/v/verify-$tag.txt)" >> /tmp/v/checks.txt
}
for s in hunyuan wan image; do
  check $s --suite $s --kernel all &
  check $s-backward --suite $s --kernel all --backward &
done
check rows-backward --kernel hopper --backward --only rows &
wait
sort /tmp/v/checks.txt | tee $OUT/checks.txt
tar czf $OUT/verify.tgz -C /tmp/v .
