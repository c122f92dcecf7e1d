import CUDADriver
import STAGeometry
import STATensors

/// The Sliding Tile Attention forward pass on an NVIDIA GPU of compute capability 8.0 or newer
/// (`Kernels/sta_forward_sm80.cu`: mma.sync tensor cores, bf16/fp16 inputs, fp32 accumulation).
///
/// One instance is the kernel specialised for one layout (canvas, tile, text), head dimension and dtype,
/// compiled by NVRTC (through `KernelCache`, so once per machine), loaded into a context, with the plan's
/// window tables uploaded. The windows themselves are arguments, so every plan of the same layout and head
/// count could share the compiled image; each instance uploads its own plan.
///
/// Tensors are [batch, heads, S, headDim] contiguous in `dtype`, S = `plan.layout.sequenceLength` (video
/// tokens in tile order, holes included, then text); LSE is [batch, heads, S] float32 (natural log). Rows
/// that attend no key (holes, padding text) get O = 0 and LSE = -inf.
///
/// Launch shape: `shape.threads` threads; grid (`queryBlocks`, heads, batch) with `blockQueries` query
/// rows per block (text query blocks first, then `queryBlocksPerTile` blocks per video tile); keys
/// streamed in chunks of `shape.blockKeys`; `shape.sharedMemoryBytes` of dynamic shared memory. The shape
/// is the first of `Shape.candidates` whose compiled kernel uses no local memory (no spills).
public struct STAForwardKernel: AttentionForwardKernel {
    /// Query rows per block (16 or 32 per warp: `Shape`).
    public static let blockQueries = 128
    /// The kernel's entry point.
    public static let functionName = "sta_forward_sm80"
    /// Head dimensions the kernel is written for.
    public static let supportedHeadDims = [64, 128]
    /// Storage dtypes the kernel reads and writes.
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// The dynamic shared memory a device must allow a block for the kernel to run at `headDim`: the most
    /// any candidate shape takes (the Q tile plus double-buffered 64-key K and V chunks, 16-bit values):
    /// 49,152 bytes for head dim 64, 98,304 for 128.
    public static func sharedMemoryBytes(headDim: Int) -> Int {
        (blockQueries + 4 * 64) * headDim * 2
    }

    /// Query blocks per video tile: ⌈tileVolume / blockQueries⌉ (a block never straddles two tiles).
    public static func queryBlocksPerTile(layout: STALayout) -> Int {
        (layout.tileVolume + blockQueries - 1) / blockQueries
    }

    /// Query blocks of one (batch, head): text blocks ⌈textCount / blockQueries⌉ plus
    /// tileCount · queryBlocksPerTile video blocks.
    public static func queryBlocks(layout: STALayout) -> Int {
        queryBlockCount(layout: layout, blockQueries: blockQueries)
    }

    public let context: CUDAContext
    public let plan: AttentionPlan
    public let headDim: Int
    public let dtype: DType
    /// The block shape the kernel was compiled for (`Shape.candidates`: the first that does not spill).
    public let shape: Shape
    /// The loaded kernel (registers, local bytes and so on can be queried from it).
    public var function: CUDAFunction { loaded.function }
    let loaded: LoadedPlanKernel

    /// Validates the parameters, compiles the kernel for `context.architecture` (or takes it from `cache`),
    /// loads it, allows its shared memory, and uploads the plan's tables as Int32.
    ///
    /// The shape: the first of `Shape.candidates` for the device whose loaded kernel has no local memory
    /// (ptxas spilled nothing), else the last candidate; `$STA_PORTABLE_SHAPE` (`ROWSxKEYSxSTEP`, kernel
    /// development) names one shape instead. Every compile goes through `cache`, so a specialisation whose
    /// first choice spills costs one extra compile once per machine, then one extra module load.
    ///
    /// Throws `unsupportedHeadDim` unless `headDim` is 64 or 128, `unsupportedDType` unless `dtype` is
    /// bf16 or f16, `unsupportedDevice` below compute capability 8.0, `sharedMemoryTooSmall` when the device's
    /// opt-in limit is below `sharedMemoryBytes(headDim:)`, and `driver` when NVRTC or the driver fail or
    /// `$STA_PORTABLE_SHAPE` is malformed. Cost: one NVRTC compile (seconds) per shape tried on a cache miss,
    /// a module load per shape tried, three small uploads.
    public init(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache = KernelCache()
    ) throws(STAKernelError) {
        try Self.validate(headDim: headDim, dtype: dtype)
        guard context.computeCapability.major >= 8 else {
            throw .unsupportedDevice(architecture: context.architecture, minimum: "sm_80")
        }
        let shared = Self.sharedMemoryBytes(headDim: headDim)
        try validateSharedMemory(shared, on: context)
        self.context = context
        self.plan = plan
        self.headDim = headDim
        self.dtype = dtype
        var candidates = Self.candidateOptions(
            plan: plan, headDim: headDim, dtype: dtype, architecture: context.architecture,
            sharedMemoryPerBlock: context.maxSharedMemoryPerBlockOptin)
        if let text = KernelDevelopment.portableShape {
            guard let shape = Shape(development: text, headDim: headDim) else {
                throw .invalidParameter(
                    what: "STA_PORTABLE_SHAPE", value: text,
                    allowed: "ROWSxKEYSxSTEP with ROWS 16 or 32, KEYS a multiple of 32 up to 128, STEP a multiple of 16 dividing KEYS (e.g. 32x64x32)")
            }
            let problem = specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: context.architecture)
            candidates = [(shape, problem + shape.definitions)]
        }
        let eligible = candidates.filter { $0.shape.sharedMemoryBytes <= context.maxSharedMemoryPerBlockOptin }
        guard !eligible.isEmpty else {
            throw .sharedMemoryTooSmall(
                needed: candidates.map(\.shape.sharedMemoryBytes).min() ?? shared, available: context.maxSharedMemoryPerBlockOptin)
        }
        let chosen: (index: Int, loaded: LoadedPlanKernel)
        do throws(CUDAError) {
            chosen = try firstWithoutLocalMemory(count: eligible.count) { (index) throws(CUDAError) in
                let attempt = try LoadedPlanKernel(
                    context: context, plan: plan, source: Self.kernelSource, functionName: Self.functionName,
                    options: eligible[index].options, architecture: context.architecture,
                    sharedMemoryBytes: eligible[index].shape.sharedMemoryBytes, cache: cache)
                return (attempt, try attempt.function.localBytes)
            }
        } catch {
            throw .driver(error)
        }
        self.shape = eligible[chosen.index].shape
        self.loaded = chosen.loaded
    }

    /// Throws `unsupportedHeadDim` unless `headDim` is in `supportedHeadDims`, `unsupportedDType` unless
    /// `dtype` is in `supportedDTypes`.
    public static func validate(headDim: Int, dtype: DType) throws(STAKernelError) {
        try validateKernelShape(headDim: headDim, dtype: dtype, headDims: supportedHeadDims, dtypes: supportedDTypes)
    }

    /// Queues O = softmax(scale · Q Kᵀ + M) V and its log-sum-exp on `stream` (nil: the default stream).
    ///
    /// Every buffer must live on the kernel's device and hold at least `tensorByteCount(batch:)`
    /// (q, k, v, output) or `lseByteCount(batch:)` (lse) bytes; `textValid` is nil (the plan's valid text
    /// length for every row) or `batch` Int32 valid lengths on the device (clamped into 0...text count by
    /// the kernel); `batch` and the head count must be in 1...65535 (grid limits) and `scale` finite.
    /// Returns once queued; the kernel reads q, k, v (never their rows at holes or padding text) and
    /// overwrites every row of output and lse. Cost: about 4 · headDim · (attended pairs) FLOPs on the GPU.
    public func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, stream: CUDAStream?
    ) throws(STAKernelError) {
        try validateLaunch(batch: batch, heads: plan.heads, scale: scale)
        try validateBuffers(
            q: q, k: k, v: v, output: output, lse: lse, textValid: textValid, batch: batch, context: context)
        var arguments = KernelArguments()
        arguments.append(q)
        arguments.append(k)
        arguments.append(v)
        arguments.append(output)
        arguments.append(lse)
        loaded.appendPlanTables(to: &arguments)
        arguments.append(Int32(plan.heads))
        arguments.append(scale)
        appendTextValid(textValid, plan: plan, to: &arguments)
        do throws(CUDAError) {
            try function.launch(
                grid: (x: Self.queryBlocks(layout: plan.layout), y: plan.heads, z: batch),
                block: (x: shape.threads, y: 1, z: 1), sharedMemoryBytes: shape.sharedMemoryBytes,
                stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }
}
