import STAGeometry
import STATensors

extension STAForwardHopperKernel {
    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm90.cu" }

    /// The CUDA C++ source of the kernel, embedded in the module (`Kernels/sta_forward_sm90.cu`).
    public static var source: String { String(decoding: PackageResources.sta_forward_sm90_cu, as: UTF8.self) }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype`: C++17, sm_90a
    /// (wgmma and setmaxnreg need the architecture-specific target), the chunk size `STA_BLOCK_N` and
    /// K/V ring depth `STA_STAGES`, and
    /// one `-D` per compile-time constant: `STA_HEAD_DIM`, `STA_BF16=1` or `STA_FP16=1`,
    /// `STA_CANVAS_T/H/W`, `STA_TILE_T/H/W`, `STA_GRID_T/H/W` (leading axes of rank-1 and rank-2 layouts
    /// are 1), `STA_TEXT_COUNT` and `STA_TEXT_VALID`. The windows are kernel arguments, not constants.
    ///
    /// Pure: no validation (an unsupported `dtype` produces `STA_FP16=1`); `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [String] {
        let layout = plan.layout
        func padded(_ extents: [Int]) -> [Int] { Array(repeating: 1, count: 3 - extents.count) + extents }
        let canvas = padded(layout.canvas.extents)
        let tile = padded(layout.tile.extents)
        let grid = padded(layout.tileGrid)
        var options = ["--std=c++17", "--gpu-architecture=\(architecture)", "-DSTA_HEAD_DIM=\(headDim)"]
        options.append(dtype == .bfloat16 ? "-DSTA_BF16=1" : "-DSTA_FP16=1")
        for (axis, name) in ["T", "H", "W"].enumerated() {
            options.append("-DSTA_CANVAS_\(name)=\(canvas[axis])")
            options.append("-DSTA_TILE_\(name)=\(tile[axis])")
            options.append("-DSTA_GRID_\(name)=\(grid[axis])")
        }
        options.append("-DSTA_TEXT_COUNT=\(layout.text.count)")
        options.append("-DSTA_TEXT_VALID=\(layout.text.valid)")
        options.append("-DSTA_BLOCK_N=\(blockKeys(headDim: headDim))")
        options.append("-DSTA_STAGES=\(stages(headDim: headDim))")
        return options
    }
}
