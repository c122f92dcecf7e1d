#!/bin/sh
# Compiles the STA forward kernel for every supported (architecture, dtype, head dim) on a few layouts
# (hunyuan, wan = padded, an image = 2D with partial text, a 1D one) and fails on any error or spill.
cd "$(dirname "$0")/.." || exit 1
F=Sources/STACUDAKernels/Kernels/sta_forward_sm80.cu
HUN="-D STA_CANVAS_T=30 -D STA_CANVAS_H=48 -D STA_CANVAS_W=80 -D STA_TILE_T=6 -D STA_TILE_H=8 -D STA_TILE_W=8 -D STA_GRID_T=5 -D STA_GRID_H=6 -D STA_GRID_W=10 -D STA_TEXT_COUNT=256 -D STA_TEXT_VALID=256"
WAN="-D STA_CANVAS_T=21 -D STA_CANVAS_H=45 -D STA_CANVAS_W=80 -D STA_TILE_T=6 -D STA_TILE_H=8 -D STA_TILE_W=8 -D STA_GRID_T=4 -D STA_GRID_H=6 -D STA_GRID_W=10 -D STA_TEXT_COUNT=0 -D STA_TEXT_VALID=0"
IMG="-D STA_CANVAS_T=1 -D STA_CANVAS_H=100 -D STA_CANVAS_W=128 -D STA_TILE_T=1 -D STA_TILE_H=8 -D STA_TILE_W=16 -D STA_GRID_T=1 -D STA_GRID_H=13 -D STA_GRID_W=8 -D STA_TEXT_COUNT=77 -D STA_TEXT_VALID=70"
ONE="-D STA_CANVAS_T=1 -D STA_CANVAS_H=1 -D STA_CANVAS_W=1000 -D STA_TILE_T=1 -D STA_TILE_H=1 -D STA_TILE_W=96 -D STA_GRID_T=1 -D STA_GRID_H=1 -D STA_GRID_W=11 -D STA_TEXT_COUNT=5 -D STA_TEXT_VALID=3"
status=0
for layout in HUN WAN IMG ONE; do
  eval defines=\$$layout
  for arch in sm_80 sm_90a; do for dtype in BF16 FP16; do for dim in 64 128; do
    if out=$(python3 scripts/nvrtc_check.py $F --arch $arch $defines -D STA_HEAD_DIM=$dim -D STA_$dtype=1); then
      echo "ok   $layout $arch $dtype D$dim: $(echo "$out" | grep -o 'Used [0-9]* registers')"
    else
      echo "FAIL $layout $arch $dtype D$dim"; echo "$out"; status=1
    fi
  done; done; done
done
exit $status
