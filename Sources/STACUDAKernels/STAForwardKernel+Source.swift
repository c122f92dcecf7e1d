import STAGeometry
import STATensors

extension STAForwardKernel {
    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm80.cu" }

    /// The CUDA C++ source NVRTC compiles: `Kernels/sta_common_sm80.cuh` (shared with the other portable
    /// kernels) followed by `Kernels/sta_forward_sm80.cu`, both embedded in the module.
    public static var source: String { portableKernelSource(PackageResources.sta_forward_sm80_cu) }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the options both kernels share (`specialisationOptions`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
    }
}
