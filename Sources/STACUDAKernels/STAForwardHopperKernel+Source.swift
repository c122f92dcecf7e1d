import STAGeometry
import STATensors

extension STAForwardHopperKernel {
    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm90.cu" }

    /// The CUDA C++ source of the kernel, embedded in the module (`Kernels/sta_forward_sm90.cu`).
    public static var source: String { String(decoding: PackageResources.sta_forward_sm90_cu, as: UTF8.self) }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype`: the options both
    /// kernels share (`specialisationOptions`) for sm_90a (wgmma and setmaxnreg need the
    /// architecture-specific target), plus the chunk size `STA_BLOCK_N` and the K/V ring depth
    /// `STA_STAGES`. Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [String] {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + ["-DSTA_BLOCK_N=\(blockKeys(headDim: headDim))", "-DSTA_STAGES=\(stages(headDim: headDim))"]
    }
}
