import CUDADriver
import STAGeometry
import STATensors

/// A compiled, loaded STA backward kernel for one plan, head dim and dtype: what the façade launches.
///
/// Both kernels (`STABackwardKernel`, portable; `STABackwardHopperKernel`, sm_90) share one contract:
/// q, k, v, output (the forward's O) and outputGradient (dO) are [batch, heads, S, headDim] in the
/// kernel's dtype, lse the forward's [batch, heads, S] float32 log-sum-exp (natural log); dq, dk, dv
/// receive the gradients in the same dtype (fp32 accumulation, rounded once), every row overwritten
/// (0 for rows that attend nothing and keys nothing attends). Scratch memory is the caller's:
/// `workspaceByteCount(batch:)` bytes, untouched by anything else until the stream has run the work.
public protocol AttentionBackwardKernel: Sendable {
    var plan: AttentionPlan { get }
    var headDim: Int { get }
    var dtype: DType { get }
    /// Whether two launches on the same inputs write the same bits (the portable kernel: yes; the
    /// Hopper kernel adds dq contributions with float32 atomics in no fixed order: no).
    var isDeterministic: Bool { get }

    /// Bytes of device workspace a launch for `batch` needs.
    func workspaceByteCount(batch: Int) -> Int

    /// Queues the backward pass on `stream` (nil: the default stream) and returns; allocates nothing.
    func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        outputGradient: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, workspace: DeviceBuffer, stream: CUDAStream?
    ) throws(STAKernelError)
}

extension STABackwardKernel: AttentionBackwardKernel {
    /// Every row has one owner and a fixed order of additions: the same bits on every run.
    public var isDeterministic: Bool { true }
}

/// Which CUDA kernel runs a backward pass.
public enum BackwardKernelChoice: String, CaseIterable, Sendable {
    /// The Hopper kernel on compute capability 9.x, else the portable one.
    case automatic
    /// `STABackwardKernel`: mma.sync and cp.async, sm_80 and newer; deterministic.
    case portable
    /// `STABackwardHopperKernel`: TMA, wgmma and warp specialisation, sm_90 only; dq not bit-reproducible.
    case hopper

    /// The kernel this choice runs on `context`: `automatic` resolved to `hopper` or `portable`.
    public func resolved(for context: CUDAContext) -> BackwardKernelChoice {
        guard self == .automatic else { return self }
        return context.computeCapability.major == 9 ? .hopper : .portable
    }

    /// Builds the chosen kernel for `plan` on `context` (compiling it, or loading it from `cache`).
    public func make(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache
    ) throws(STAKernelError) -> any AttentionBackwardKernel {
        switch self {
        case .automatic:
            return try resolved(for: context).make(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        case .portable:
            return try STABackwardKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        case .hopper:
            return try STABackwardHopperKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        }
    }
}
