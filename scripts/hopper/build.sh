#!/bin/bash
# Builds one harness library per configuration of check.py into $1 (default scripts/hopper/lib).
# Needs nvcc (CUDA 12.4+). Runs the compiles in parallel.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
OUTDIR=${1:-$HERE/lib}
mkdir -p "$OUTDIR"
LIBDIR=${CUDA_LIBDIR:+-L$CUDA_LIBDIR}
# ONLY: space-separated configuration names (default: all); SUFFIX: appended to the library names;
# EXTRA_FLAGS: more nvcc flags (e.g. -DSTA_PINGPONG=0 for a variant).
names=${ONLY:-$(python3 -c "import sys; sys.path.insert(0, '$HERE'); import check; print(' '.join(check.CONFIGS))")}
pids=()
for n in $names; do
  defs=$(python3 -c "
import sys; sys.path.insert(0, '$HERE'); import check
c = check.CONFIGS['$n']; canvas, tile, text, valid, dim, dtype = c[0], c[1], c[2], c[3], c[6], c[7]
import math
d = ['-DSTA_HEAD_DIM=%d' % dim, '-DSTA_BF16=1' if dtype == 'bf16' else '-DSTA_FP16=1']
for a, cv, t in zip('THW', canvas, tile):
    d += ['-DSTA_CANVAS_%s=%d' % (a, cv), '-DSTA_TILE_%s=%d' % (a, t), '-DSTA_GRID_%s=%d' % (a, math.ceil(cv / t))]
d += ['-DSTA_TEXT_COUNT=%d' % text, '-DSTA_TEXT_VALID=%d' % valid]
print(' '.join(d))")
  nvcc -gencode=arch=compute_90a,code=sm_90a -std=c++17 -O3 -shared -Xcompiler -fPIC $LIBDIR $defs $EXTRA_FLAGS \
    -o "$OUTDIR/libsta_$n$SUFFIX.so" "$HERE/harness.cu" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
ls -la "$OUTDIR"
