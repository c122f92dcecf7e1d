import STAGeometry
import STATensors

extension STABackwardKernel {
    /// The file name NVRTC compiles the kernels under (appears in its diagnostics).
    public static var sourceName: String { "sta_backward_sm80.cu" }

    /// The CUDA C++ source of the three kernels NVRTC compiles: `Kernels/sta_common_sm80.cuh` (shared with
    /// the portable forward kernel) followed by `Kernels/sta_backward_sm80.cu`, both embedded in the module.
    public static var source: String { portableKernelSource(PackageResources.sta_backward_sm80_cu) }

    /// The NVRTC options that specialise the kernels for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the same constants as the forward kernels (`specialisationOptions`). Pure: `init`
    /// validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
    }
}
