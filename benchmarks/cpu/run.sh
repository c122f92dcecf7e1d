#!/usr/bin/env bash
# CPU benchmark: FMA peak, dense fp32 attention (S=4096, D=128, H=8), STA 3x3x3 on a 20x24x40 canvas
# against dense on the same tokens, then the NumPy/OpenBLAS and ONNX Runtime peers.
# Usage: benchmarks/cpu/run.sh [--quick]   (from anywhere; results go to stdout)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== machine"
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|MHz|L2|L3" || true
echo "load: $(uptime)"
echo "== swift (release)"
swift build -c release --product sta
.build/release/sta bench --cpu "$@"
echo "load: $(uptime)"
echo "== peers (python)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/cpu/peers.py
echo "load: $(uptime)"
