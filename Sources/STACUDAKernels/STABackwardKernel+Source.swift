import STAGeometry
import STATensors

extension STABackwardKernel {
    /// The file name NVRTC compiles the kernels under (appears in its diagnostics).
    public static var sourceName: String { "sta_backward_sm80.cu" }

    /// The CUDA C++ source of the three kernels, embedded in the module (`Kernels/sta_backward_sm80.cu`).
    public static var source: String { String(decoding: PackageResources.sta_backward_sm80_cu, as: UTF8.self) }

    /// The NVRTC options that specialise the kernels for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the same constants as the forward kernels (`specialisationOptions`). Pure: `init`
    /// validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
    }
}
