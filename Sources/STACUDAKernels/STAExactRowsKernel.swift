import CUDADriver
import STAGeometry
import STATensors

/// The rows a fast kernel cannot represent in fp32, found after it on the same stream
/// (`Kernels/sta_exact_rows.cu`, plain CUDA, sm_80 and newer, any forward or backward kernel).
///
/// - `launchForward`, after a forward kernel: every row that attends something and whose log-sum-exp is
///   NaN or ±∞, or whose output holds a non-finite element — what an fp32 overflow of |q·k| · scale or of
///   the unnormalised P·V sum leaves — is recomputed in float64 as the reference computes it, its output
///   rounded to the storage type and its log-sum-exp to Float (±∞ where it passes the fp32 range). Rows
///   whose inputs hold NaN or ±∞ come out NaN exactly as the reference's do (the NaN contract is
///   unchanged). Other rows are read, never written.
/// - `launchBackward`, after a backward kernel: every row that attends something and whose log-sum-exp is
///   NaN, ±∞ or of magnitude at least `backwardLSELimit` gets NaN in its dq row and in the dk and dv rows of
///   every key it attends. fp32 cannot carry such an L, so exp(s − L) cannot be recomputed from it; the GPU
///   does not compute these gradients in float64 (the CPU backend does) and marks them instead of leaving
///   zeros or fp32 garbage.
///
/// One instance is the two kernels specialised for one layout, head dimension and dtype (the same problem
/// constants as the fast kernels), compiled by NVRTC through `KernelCache`, with the plan's tables uploaded.
///
/// Cost on inputs without such rows: one read of the log-sum-exp and (forward) of the output, about
/// B · H · S · (4 + 2 · headDim) bytes, in one launch. A flagged forward row costs two passes over its keys
/// (4 · headDim double-precision flops per key each) in one warp.
public struct STAExactRowsKernel: Sendable {
    /// Threads per block: one warp per row.
    public static let threadsPerBlock = 256
    /// Entry points.
    public static let forwardFunctionName = "sta_exact_rows_forward"
    public static let backwardFunctionName = "sta_exact_rows_backward"
    /// |lse| from which `launchBackward` marks a row (fp32 holds L only to 2⁻⁹ there).
    public static let backwardLSELimit: Float = 32768
    /// Head dimensions and dtypes: those of the fast kernels.
    public static let supportedHeadDims = [64, 128]
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// The file name NVRTC compiles the kernels under.
    public static var sourceName: String { "sta_exact_rows.cu" }

    /// The translation unit NVRTC compiles: `sta_exact_rows.cu` with `sta_common.cuh`.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: decoded(PackageResources.sta_exact_rows_cu), headers: [.common])
    }

    /// The NVRTC options for `plan`, `headDim` and `dtype` on `architecture`: the problem constants every
    /// kernel shares and `STA_EXACT_THREADS`. Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String) -> [String] {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + ["-DSTA_EXACT_THREADS=\(threadsPerBlock)"]
    }

    /// Blocks of a launch over `rowCount` rows (one warp per row).
    public static func blocks(rowCount: Int) -> Int {
        let warps = threadsPerBlock / 32
        return (rowCount + warps - 1) / warps
    }

    public let context: CUDAContext
    public let plan: AttentionPlan
    public let headDim: Int
    public let dtype: DType
    let loaded: LoadedPlanKernel
    public var forwardFunction: CUDAFunction { loaded.function }
    public let backwardFunction: CUDAFunction

    /// Validates the parameters, compiles the kernels for `context.architecture` (or takes them from
    /// `cache`), loads them and uploads the plan's tables. Throws `unsupportedHeadDim`, `unsupportedDType`,
    /// `unsupportedDevice` below compute capability 8.0, and `driver` when NVRTC or the driver fail.
    /// Cost: one NVRTC compile (about a second) on a cache miss, a module load, three small uploads.
    public init(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache = KernelCache()
    ) throws(STAKernelError) {
        try validateKernelShape(
            headDim: headDim, dtype: dtype, headDims: Self.supportedHeadDims, dtypes: Self.supportedDTypes)
        guard context.computeCapability.major >= 8 else {
            throw .unsupportedDevice(architecture: context.architecture, minimum: "sm_80")
        }
        self.context = context
        self.plan = plan
        self.headDim = headDim
        self.dtype = dtype
        do throws(CUDAError) {
            loaded = try LoadedPlanKernel(
                context: context, plan: plan, source: Self.kernelSource, functionName: Self.forwardFunctionName,
                options: Self.compileOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: context.architecture),
                architecture: context.architecture, sharedMemoryBytes: 0, cache: cache)
            backwardFunction = try loaded.module.function(named: Self.backwardFunctionName)
        } catch {
            throw .driver(error)
        }
    }

    /// Queues the forward pass's recomputation on `stream` (nil: the default stream), after the forward
    /// kernel that wrote `output` and `lse` on the same stream. The buffers and arguments are the forward
    /// kernel's (already validated by its launch). Throws `driver` when the launch fails.
    public func launchForward(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, stream: CUDAStream?
    ) throws(STAKernelError) {
        let rowCount = batch * plan.heads * plan.layout.sequenceLength
        var arguments = KernelArguments()
        arguments.append(q)
        arguments.append(k)
        arguments.append(v)
        arguments.append(output)
        arguments.append(lse)
        loaded.appendPlanTables(to: &arguments)
        arguments.append(Int32(plan.heads))
        arguments.append(Int64(rowCount))
        arguments.append(scale)
        appendTextValid(textValid, plan: plan, to: &arguments)
        try launch(forwardFunction, rowCount: rowCount, arguments: arguments, stream: stream)
    }

    /// Queues the backward pass's marking on `stream`, after the backward kernels that wrote `dq`, `dk`
    /// and `dv` on the same stream; `lse` is the log-sum-exp they were given. Throws `driver` when the
    /// launch fails.
    public func launchBackward(
        lse: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, batch: Int, textValid: DeviceBuffer?,
        stream: CUDAStream?
    ) throws(STAKernelError) {
        let rowCount = batch * plan.heads * plan.layout.sequenceLength
        var arguments = KernelArguments()
        arguments.append(lse)
        arguments.append(dq)
        arguments.append(dk)
        arguments.append(dv)
        loaded.appendPlanTables(to: &arguments)
        arguments.append(Int32(plan.heads))
        arguments.append(Int64(rowCount))
        appendTextValid(textValid, plan: plan, to: &arguments)
        try launch(backwardFunction, rowCount: rowCount, arguments: arguments, stream: stream)
    }

    private func launch(
        _ function: CUDAFunction, rowCount: Int, arguments: KernelArguments, stream: CUDAStream?
    ) throws(STAKernelError) {
        guard rowCount > 0 else { return }
        do throws(CUDAError) {
            try function.launch(
                grid: (x: Self.blocks(rowCount: rowCount), y: 1, z: 1), block: (x: Self.threadsPerBlock, y: 1, z: 1),
                sharedMemoryBytes: 0, stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }
}
