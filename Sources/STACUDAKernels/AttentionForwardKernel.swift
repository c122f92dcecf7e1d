import CUDADriver
import STAGeometry
import STATensors

/// A compiled, loaded STA forward kernel for one plan, head dim and dtype: what the façade launches.
///
/// Both kernels share one contract: q, k, v and output are [B, H, S, D] contiguous in the kernel's dtype,
/// lse is [B, H, S] float32 (natural log); rows that attend nothing get 0 and −∞.
///
/// Valid text lengths are a run-time argument: `textValid` is nil (every batch row has
/// `plan.layout.text.valid` valid text tokens) or an Int32 device array of `batch` entries, entry b the
/// valid length of row b. The kernel clamps each entry into 0...`plan.layout.text.count` (it cannot be
/// checked on the host without a synchronisation). Text positions at or past a row's length are padding:
/// their queries get 0 and −∞, and no query of that row attends them. The compiled kernel does not depend
/// on the valid length, so one kernel serves every prompt length.
///
/// NaN or ±inf in the q of a row, or in the k or v of a key the row attends, makes that row's output and
/// lse NaN, as PyTorch does (never a silent 0). So does an fp32 overflow of a row's scores or of its P·V
/// sum (finite inputs of 1e20 and more): `STAExactRowsKernel.launchForward`, queued after the kernel (the
/// engine does), recomputes exactly those rows in float64.
public protocol AttentionForwardKernel: Sendable {
    var plan: AttentionPlan { get }
    var headDim: Int { get }
    var dtype: DType { get }

    /// Queues the forward pass on `stream` (nil: the default stream) and returns.
    func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, stream: CUDAStream?
    ) throws(STAKernelError)
}

extension AttentionForwardKernel {
    /// Bytes of one of q, k, v, output for `batch`: batch · heads · S · headDim · 2.
    public func tensorByteCount(batch: Int) -> Int {
        batch * plan.heads * plan.layout.sequenceLength * headDim * dtype.byteCount
    }

    /// Bytes of the LSE tensor for `batch`: batch · heads · S · 4.
    public func lseByteCount(batch: Int) -> Int {
        batch * plan.heads * plan.layout.sequenceLength * 4
    }

    /// Throws `foreignBuffer` unless every buffer lives on `context`'s device, `bufferTooSmall` unless
    /// q, k, v and output hold `tensorByteCount(batch:)` bytes, lse `lseByteCount(batch:)` and textValid
    /// (when given) `batch` Int32 values, `invalidParameter` when textValid is not 4-byte aligned.
    func validateBuffers(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        textValid: DeviceBuffer?, batch: Int, context: CUDAContext
    ) throws(STAKernelError) {
        let tensorBytes = tensorByteCount(batch: batch)
        let lseBytes = lseByteCount(batch: batch)
        for (name, buffer, needed) in [
            ("q", q, tensorBytes), ("k", k, tensorBytes), ("v", v, tensorBytes), ("output", output, tensorBytes),
            ("lse", lse, lseBytes),
        ] {
            try checkBuffer(name, buffer, needed: needed, alignment: 1, context: context)
        }
        try validateTextValid(textValid, batch: batch, context: context)
    }
}

/// Throws `foreignBuffer` when `textValid` lives on another device than `context`, `bufferTooSmall` when it
/// holds fewer than `batch` Int32 values, `invalidParameter` when its address is not 4-byte aligned.
/// Nothing to check for nil.
func validateTextValid(_ textValid: DeviceBuffer?, batch: Int, context: CUDAContext) throws(STAKernelError) {
    guard let textValid else { return }
    try checkBuffer("textValid", textValid, needed: batch * 4, alignment: 4, context: context)
}

/// Throws `foreignBuffer` unless `buffer` lives on `context`'s device, `bufferTooSmall` unless it holds
/// `needed` bytes, `invalidParameter` unless its address is a multiple of `alignment`.
func checkBuffer(
    _ name: String, _ buffer: DeviceBuffer, needed: Int, alignment: Int, context: CUDAContext
) throws(STAKernelError) {
    try checkBuffer(
        name, deviceOrdinal: buffer.context.deviceOrdinal, byteCount: buffer.byteCount, address: buffer.address,
        needed: needed, alignment: alignment, kernelDeviceOrdinal: context.deviceOrdinal)
}

/// The checks of `checkBuffer(_:_:needed:alignment:context:)` on a buffer's facts (testable without a GPU).
func checkBuffer(
    _ name: String, deviceOrdinal: Int, byteCount: Int, address: UInt64, needed: Int, alignment: Int,
    kernelDeviceOrdinal: Int
) throws(STAKernelError) {
    guard deviceOrdinal == kernelDeviceOrdinal else { throw .foreignBuffer(name: name) }
    guard byteCount >= needed else { throw .bufferTooSmall(name: name, byteCount: byteCount, needed: needed) }
    guard address % UInt64(alignment) == 0 else {
        throw .invalidParameter(
            what: "the address of \(name)", value: "0x" + String(address, radix: 16),
            allowed: "a multiple of \(alignment) bytes")
    }
}

/// Appends the two text arguments every kernel takes last: the per-row valid lengths (a device address,
/// 0 for none) and the plan's valid length, the value of every row when there is no array.
func appendTextValid(_ textValid: DeviceBuffer?, plan: AttentionPlan, to arguments: inout KernelArguments) {
    if let textValid { arguments.append(textValid) } else { arguments.append(UInt64(0)) }
    arguments.append(Int32(plan.layout.text.valid))
}

/// Throws `invalidParameter` unless `batch` and `heads` fit a grid dimension (1...65535) and `scale` is
/// finite: the checks every launch makes.
func validateLaunch(batch: Int, heads: Int, scale: Float) throws(STAKernelError) {
    guard (1...65535).contains(batch) else {
        throw .invalidParameter(what: "batch", value: "\(batch)", allowed: "1...65535")
    }
    guard heads <= 65535 else {
        throw .invalidParameter(what: "head count", value: "\(heads)", allowed: "1...65535")
    }
    guard scale.isFinite else {
        throw .invalidParameter(what: "scale", value: "\(scale)", allowed: "a finite number (usually 1/√headDim)")
    }
}

/// Throws `sharedMemoryTooSmall` unless a block may have `bytes` of dynamic shared memory on `context`.
func validateSharedMemory(_ bytes: Int, on context: CUDAContext) throws(STAKernelError) {
    guard bytes <= context.maxSharedMemoryPerBlockOptin else {
        throw .sharedMemoryTooSmall(needed: bytes, available: context.maxSharedMemoryPerBlockOptin)
    }
}

/// Throws `unsupportedHeadDim` or `unsupportedDType` unless `headDim` and `dtype` are among a kernel's.
func validateKernelShape(headDim: Int, dtype: DType, headDims: [Int], dtypes: [DType]) throws(STAKernelError) {
    guard headDims.contains(headDim) else { throw .unsupportedHeadDim(headDim, allowed: headDims) }
    guard dtypes.contains(dtype) else { throw .unsupportedDType(dtype, allowed: dtypes) }
}

/// The NVRTC options both kernels share: C++17, the target architecture, and one `-D` per compile-time
/// constant: `STA_HEAD_DIM`, `STA_BF16=1` or `STA_FP16=1`, `STA_CANVAS_T/H/W`, `STA_TILE_T/H/W`,
/// `STA_GRID_T/H/W` (leading axes of rank-1 and rank-2 layouts are 1) and `STA_TEXT_COUNT`. The windows
/// and the valid text lengths are kernel arguments, not constants. Pure: no validation.
func specialisationOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String) -> [String] {
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
    return options
}

/// A kernel module loaded on a device with a plan's tables uploaded: what both forward kernels hold.
struct LoadedPlanKernel: Sendable {
    let module: CUDAModule
    let function: CUDAFunction
    /// The plan's tables as Int32 on the device: window index per head, CSR row starts, key tiles.
    let windowOfHead: DeviceBuffer
    let keyTileStart: DeviceBuffer
    let keyTiles: DeviceBuffer

    /// Compiles `source` with `options` for `architecture` (or takes it from `cache`), loads
    /// `functionName`, allows it `sharedMemoryBytes` of dynamic shared memory and uploads `plan`'s
    /// tables. Cost: one NVRTC compile (seconds) on a cache miss, a module load, three small uploads.
    init(
        context: CUDAContext, plan: AttentionPlan, source: KernelSource, functionName: String,
        options: [String], architecture: String, sharedMemoryBytes: Int, cache: KernelCache
    ) throws(CUDAError) {
        let image = try source.image(cache: cache, options: options, architecture: architecture, context: context)
        module = try CUDAModule(context: context, image: image)
        function = try module.function(named: functionName)
        try function.setMaxDynamicSharedMemory(bytes: sharedMemoryBytes)
        windowOfHead = try DeviceBuffer(context: context, copying: plan.windowIndexByHead)
        keyTileStart = try DeviceBuffer(context: context, copying: plan.keyTileStart)
        keyTiles = try DeviceBuffer(context: context, copying: plan.keyTiles)
    }

    /// Appends the three plan tables, in the kernels' parameter order.
    func appendPlanTables(to arguments: inout KernelArguments) {
        arguments.append(windowOfHead)
        arguments.append(keyTileStart)
        arguments.append(keyTiles)
    }
}

/// Query blocks of one (batch, head) for blocks of `blockQueries` rows that never straddle two tiles:
/// ⌈textCount / blockQueries⌉ text blocks plus tileCount · ⌈tileVolume / blockQueries⌉ video blocks.
func queryBlockCount(layout: STALayout, blockQueries: Int) -> Int {
    (layout.text.count + blockQueries - 1) / blockQueries
        + layout.tileCount * ((layout.tileVolume + blockQueries - 1) / blockQueries)
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

/// Throws `invalidParameter` unless `batch` is in 1...65535 and a grid of batch · heads · `blocksPerHead`
/// blocks (`blocks` names them in the message) fits in 2³¹ − 1: the Hopper kernels' one-dimensional grids.
func validateGrid(batch: Int, heads: Int, blocksPerHead: Int, blocks: String) throws(STAKernelError) {
    guard (1...65535).contains(batch) else {
        throw .invalidParameter(what: "batch", value: "\(batch)", allowed: "1...65535")
    }
    let total = batch.multipliedReportingOverflow(by: heads * blocksPerHead)
    guard !total.overflow, total.partialValue <= Int(Int32.max) else {
        throw .invalidParameter(
            what: "batch · heads · \(blocks)", value: "\(batch) · \(heads) · \(blocksPerHead)",
            allowed: "at most \(Int32.max) blocks")
    }
}

/// The TMA descriptor a Hopper kernel reads a [batch, heads, S, headDim] tensor through: the 3D view
/// [batch · heads][S][headDim], boxes of 64 columns × `boxRows` rows × 1 slice, 128-byte swizzle; rows past
/// S read as zeros.
func headTensorMap(
    _ buffer: DeviceBuffer, plan: AttentionPlan, headDim: Int, dtype: DType, batch: Int, boxRows: Int
) throws(CUDAError) -> TensorMap {
    let rows = plan.layout.sequenceLength
    return try TensorMap.tiled(
        buffer: buffer, elementType: dtype == .bfloat16 ? .bfloat16 : .float16,
        dimensions: [headDim, rows, batch * plan.heads],
        strideBytes: [headDim * 2, rows * headDim * 2], boxDimensions: [64, boxRows, 1],
        swizzle: .bytes128, l2Promotion: .bytes128)
}

/// Loads candidates 0, 1, … through `load` (the loaded kernel and its local memory per thread, i.e. stack
/// and spills) and returns the first without local memory, else the last; asks nothing past the one it
/// returns. `count` must be at least 1. Cost: one `load` per candidate tried.
func firstWithoutLocalMemory<Loaded>(
    count: Int, load: (Int) throws(CUDAError) -> (loaded: Loaded, localBytes: Int)
) throws(CUDAError) -> (index: Int, loaded: Loaded) {
    precondition(count >= 1, "at least one candidate")
    for index in 0..<count {
        let (loaded, localBytes) = try load(index)
        if localBytes == 0 || index == count - 1 { return (index, loaded) }
    }
    preconditionFailure("unreachable: the last candidate is always returned")
}
