#!/usr/bin/env bash
# One H200: scripts/issue_contention.cu built with the device's nvcc and run once.
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
nvcc --version | tail -2
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I Sources/STACUDAKernels/Kernels \
  -DSTA_HEAD_DIM=128 -DSTA_BF16=1 -DSTA_CANVAS_T=1 -DSTA_CANVAS_H=1 -DSTA_CANVAS_W=64 -DSTA_TILE_T=1 \
  -DSTA_TILE_H=1 -DSTA_TILE_W=64 -DSTA_GRID_T=1 -DSTA_GRID_H=1 -DSTA_GRID_W=1 -DSTA_TEXT_COUNT=0 \
  -o /tmp/issue_contention scripts/issue_contention.cu || exit 1
for i in 1 2; do echo "run $i"; /tmp/issue_contention; done | tee $OUT/issue_contention4.txt
