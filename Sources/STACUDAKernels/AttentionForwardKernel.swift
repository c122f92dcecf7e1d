import CUDADriver
import STAGeometry
import STATensors

/// A compiled, loaded STA forward kernel for one plan, head dim and dtype: what the façade launches.
///
/// Both kernels share one contract: q, k, v and output are [B, H, S, D] contiguous in the kernel's dtype,
/// lse is [B, H, S] float32 (natural log); rows that attend nothing get 0 and −∞.
public protocol AttentionForwardKernel: Sendable {
    var plan: AttentionPlan { get }
    var headDim: Int { get }
    var dtype: DType { get }

    /// Queues the forward pass on `stream` (nil: the default stream) and returns.
    func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer, batch: Int,
        scale: Float, stream: CUDAStream?
    ) throws(STAKernelError)
}

/// Which CUDA kernel runs a forward pass.
public enum ForwardKernelChoice: String, CaseIterable, Sendable {
    /// The Hopper kernel on compute capability 9.0, else the portable one.
    case automatic
    /// `STAForwardKernel`: mma.sync and cp.async, sm_80 and newer.
    case portable
    /// `STAForwardHopperKernel`: TMA, wgmma and warp specialisation, sm_90 only.
    case hopper

    /// The kernel this choice runs on `context`: `automatic` resolved to `hopper` or `portable`.
    public func resolved(for context: CUDAContext) -> ForwardKernelChoice {
        guard self == .automatic else { return self }
        return context.computeCapability.major == 9 ? .hopper : .portable
    }

    /// Builds the chosen kernel for `plan` on `context` (compiling it, or loading it from `cache`).
    public func make(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache
    ) throws(STAKernelError) -> any AttentionForwardKernel {
        switch self {
        case .automatic:
            return try resolved(for: context).make(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        case .portable:
            return try STAForwardKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        case .hopper:
            return try STAForwardHopperKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        }
    }
}
