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
if grep -rqs "CPUBenchmark" Sources/STACommand Sources/SlidingTileAttention; then
    swift build -c release --product sta
    .build/release/sta bench --cpu "$@"
elif grep -q '"sta-cpu-bench"' Package.swift; then
    swift build -c release --product sta-cpu-bench
    .build/release/sta-cpu-bench "$@"
else
    echo "No Swift runner: wire CPUBenchmark.runSuite to 'sta bench --cpu', or add to Package.swift"
    echo '  .executableTarget(name: "sta-cpu-bench", dependencies: ["STACPUKernels", "STAGeometry"], path: "benchmarks/cpu/bench"),'
fi
echo "load: $(uptime)"
echo "== peers (python)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/cpu/peers.py
echo "load: $(uptime)"
