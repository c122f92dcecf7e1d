import STAGeometry
import STATensors

extension STAForwardKernel {
    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm80.cu" }

    /// The CUDA C++ source of the kernel, embedded in the module (`Kernels/sta_forward_sm80.cu`).
    public static var source: String { String(decoding: PackageResources.sta_forward_sm80_cu, as: UTF8.self) }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the options both kernels share (`specialisationOptions`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
    }
}
