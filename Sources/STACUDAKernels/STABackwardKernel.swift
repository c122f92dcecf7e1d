import CUDADriver
import STAGeometry
import STATensors

/// The Sliding Tile Attention backward pass on an NVIDIA GPU of compute capability 8.0 or newer
/// (`Kernels/sta_backward_sm80.cu`: mma.sync tensor cores, bf16/fp16 inputs, fp32 accumulation, gradients
/// written in the input dtype).
///
/// With P = exp(scale · Q Kᵀ − L) over the pairs the plan allows and Δ_i = Σ_d dO_id · O_id:
///
///     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
///
/// Three kernels run in order on one stream, flash-style (P recomputed, nothing S × S stored, no atomics):
/// `prepare` turns L into log2 units and computes Δ per row (+∞ and 0 for rows that attend nothing) into
/// the caller's workspace (`workspaceByteCount(batch:)`; nothing is allocated per call);
/// `keys` gives each block of `blockKeys` key rows (inside one key tile, or of the text) its dK and dV
/// rows, streaming the query tiles that attend its tile (`AttentionPlan.inverseKeyTileLists`) and the valid text;
/// `queries` gives each block of `blockQueries` query rows its dQ rows, streaming the forward's key chunks.
///
/// One instance is the kernels specialised for one layout, head dimension and dtype (compiled by NVRTC
/// through `KernelCache`), loaded into a context, with the plan's tables and their inverse uploaded.
public struct STABackwardKernel: Sendable {
    /// Key rows per block of the dK/dV kernel (16 per warp).
    public static let blockKeys = 128
    /// Query rows per block of the dQ kernel (16 per warp), as in the forward.
    public static let blockQueries = 128
    /// Keys per chunk of the dQ kernel's inner loop.
    public static let blockKeysPerChunk = 64
    /// Threads per block of every kernel (8 warps).
    public static let threadsPerBlock = 256
    /// Entry points, in launch order.
    public static let prepareFunctionName = "sta_backward_prepare_sm80"
    public static let keysFunctionName = "sta_backward_dkdv_sm80"
    public static let queriesFunctionName = "sta_backward_dq_sm80"
    /// Head dimensions the kernels are written for.
    public static let supportedHeadDims = [64, 128]
    /// Storage dtypes the kernels read.
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// Query rows per chunk of the dK/dV kernel's inner loop: 32 at head dim 128 (the dK and dV
    /// accumulators take 128 registers), 64 at head dim 64.
    public static func queriesPerChunk(headDim: Int) -> Int { headDim == 128 ? 32 : 64 }

    /// Dynamic shared memory of the dK/dV kernel: its K and V rows plus double-buffered Q and dO chunks.
    /// 98,304 bytes at head dim 128, 65,536 at 64.
    public static func keysSharedMemoryBytes(headDim: Int) -> Int {
        (2 * blockKeys + 4 * queriesPerChunk(headDim: headDim)) * headDim * 2
    }

    /// Dynamic shared memory of the dQ kernel: its Q and dO rows plus double-buffered K and V chunks.
    /// 131,072 bytes at head dim 128, 65,536 at 64.
    public static func queriesSharedMemoryBytes(headDim: Int) -> Int {
        (2 * blockQueries + 4 * blockKeysPerChunk) * headDim * 2
    }

    /// Blocks of one (batch, head) of the dK/dV kernel: ⌈textCount / blockKeys⌉ text key blocks (first)
    /// plus tileCount · ⌈tileVolume / blockKeys⌉ video key blocks.
    public static func keyBlocks(layout: STALayout) -> Int { queryBlockCount(layout: layout, blockQueries: blockKeys) }

    /// Blocks of one (batch, head) of the dQ kernel (the forward's query blocks).
    public static func queryBlocks(layout: STALayout) -> Int {
        queryBlockCount(layout: layout, blockQueries: blockQueries)
    }

    /// Bytes of device workspace a launch for `batch` needs: L in log2 units and Δ, batch · heads · S
    /// floats each, Δ starting at the next 256-byte boundary. Never 0.
    public static func workspaceByteCount(plan: AttentionPlan, batch: Int) -> Int {
        let arrayBytes = batch * plan.heads * plan.layout.sequenceLength * 4
        return (arrayBytes + 255) / 256 * 256 + arrayBytes
    }

    public let context: CUDAContext
    public let plan: AttentionPlan
    public let headDim: Int
    public let dtype: DType
    let module: CUDAModule
    /// The three loaded kernels, in launch order.
    public let prepareFunction: CUDAFunction
    public let keysFunction: CUDAFunction
    public let queriesFunction: CUDAFunction
    /// Int32 tables on the device: window per head, the plan's CSR (for dQ), its inverse (for dK, dV).
    let windowOfHead: DeviceBuffer
    let keyTileStart: DeviceBuffer
    let keyTiles: DeviceBuffer
    let queryTileStart: DeviceBuffer
    let queryTiles: DeviceBuffer

    /// Validates the parameters, compiles the kernels for `context.architecture` (or takes them from
    /// `cache`), loads them, allows their shared memory and uploads the plan's tables and their inverse.
    ///
    /// Throws `unsupportedHeadDim` unless `headDim` is 64 or 128, `unsupportedDType` unless `dtype` is
    /// bf16 or f16, `unsupportedDevice` below compute capability 8.0, `sharedMemoryTooSmall` when the
    /// device's opt-in limit is below what the kernels need, and `driver` when NVRTC or the driver fail.
    /// Cost: one NVRTC compile (seconds) on a cache miss, a module load, five small uploads, and
    /// O(plan size) host work for the inverse lists.
    public init(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache = KernelCache()
    ) throws(STAKernelError) {
        try validateKernelShape(
            headDim: headDim, dtype: dtype, headDims: Self.supportedHeadDims, dtypes: Self.supportedDTypes)
        guard context.computeCapability.major >= 8 else {
            throw .unsupportedDevice(architecture: context.architecture, minimum: "sm_80")
        }
        let shared = max(Self.keysSharedMemoryBytes(headDim: headDim), Self.queriesSharedMemoryBytes(headDim: headDim))
        try validateSharedMemory(shared, on: context)
        self.context = context
        self.plan = plan
        self.headDim = headDim
        self.dtype = dtype
        let inverse = plan.inverseKeyTileLists()
        // A zero-byte buffer has address 0; give every table at least one entry.
        func upload(_ values: [Int32]) throws(CUDAError) -> DeviceBuffer {
            try DeviceBuffer(context: context, copying: values.isEmpty ? [0] : values)
        }
        do throws(CUDAError) {
            let image = try Self.kernelSource.image(
                cache: cache,
                options: Self.compileOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: context.architecture),
                architecture: context.architecture, context: context)
            module = try CUDAModule(context: context, image: image)
            prepareFunction = try module.function(named: Self.prepareFunctionName)
            keysFunction = try module.function(named: Self.keysFunctionName)
            queriesFunction = try module.function(named: Self.queriesFunctionName)
            try keysFunction.setMaxDynamicSharedMemory(bytes: Self.keysSharedMemoryBytes(headDim: headDim))
            try queriesFunction.setMaxDynamicSharedMemory(bytes: Self.queriesSharedMemoryBytes(headDim: headDim))
            windowOfHead = try upload(plan.windowIndexByHead)
            keyTileStart = try upload(plan.keyTileStart)
            keyTiles = try upload(plan.keyTiles)
            queryTileStart = try upload(inverse.queryTileStart)
            queryTiles = try upload(inverse.queryTiles)
        } catch {
            throw .driver(error)
        }
    }

    /// Bytes of one of q, k, v, output, outputGradient for `batch`: batch · heads · S · headDim · 2.
    public func tensorByteCount(batch: Int) -> Int {
        batch * plan.heads * plan.layout.sequenceLength * headDim * dtype.byteCount
    }

    /// Bytes of device workspace a launch for `batch` needs (`workspaceByteCount(plan:batch:)`).
    public func workspaceByteCount(batch: Int) -> Int { Self.workspaceByteCount(plan: plan, batch: batch) }

    /// Queues the backward pass on `stream` (nil: the default stream) and returns; allocates nothing.
    ///
    /// q, k, v, output (the forward's O) and outputGradient (dO) are [batch, heads, S, headDim] in
    /// `dtype`; lse is the forward's [batch, heads, S] float32 log-sum-exp (natural log); dq, dk, dv are
    /// [batch, heads, S, headDim] in `dtype` too (accumulated in fp32, rounded once) and every row of them
    /// is overwritten. Rows that attend nothing (holes, padding text, rows whose lse is −∞) get dq = 0;
    /// keys nothing attends get dk = dv = 0; rows of the inputs at holes and padding text are never read.
    /// `textValid` is nil (the plan's valid text length for every row) or `batch` Int32 valid lengths on
    /// the device, the same the forward ran with (clamped into 0...text count by the kernels).
    ///
    /// `workspace` must hold `workspaceByteCount(batch:)` bytes and stay untouched until the work
    /// completes (the caller owns it; reuse it across calls on one stream). Throws `invalidParameter` for
    /// a batch or head count outside 1...65535, a non-finite scale or a misaligned buffer, `foreignBuffer`
    /// or `bufferTooSmall` for a buffer on another device or too small, `driver` when a launch fails.
    ///
    /// Cost: about 2.5 · `plan.effectiveFLOPs(batch:headDim:)` tensor-core FLOPs (S and dP are
    /// recomputed in both passes: 7/2 by exact count) plus reading O and dO once.
    public func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        outputGradient: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, workspace: DeviceBuffer, stream: CUDAStream?
    ) throws(STAKernelError) {
        try validateLaunch(batch: batch, heads: plan.heads, scale: scale)
        let tensorBytes = tensorByteCount(batch: batch)
        let rowCount = batch * plan.heads * plan.layout.sequenceLength
        let workspaceBytes = workspaceByteCount(batch: batch)
        let checks: [(String, DeviceBuffer, Int)] = [
            ("q", q, tensorBytes), ("k", k, tensorBytes), ("v", v, tensorBytes), ("output", output, tensorBytes),
            ("outputGradient", outputGradient, tensorBytes), ("lse", lse, rowCount * 4),
            ("dq", dq, tensorBytes), ("dk", dk, tensorBytes), ("dv", dv, tensorBytes),
            ("workspace", workspace, workspaceBytes),
        ]
        for (name, buffer, needed) in checks {
            try checkBuffer(name, buffer, needed: needed, alignment: name == "workspace" ? 16 : 1, context: context)
        }
        try validateTextValid(textValid, batch: batch, context: context)
        do throws(CUDAError) {
            let deltaOffset = (rowCount * 4 + 255) / 256 * 256
            let lse2 = try DeviceBuffer(borrowing: workspace.address, byteCount: rowCount * 4, context: context)
            let delta = try DeviceBuffer(
                borrowing: workspace.address(byteOffset: deltaOffset), byteCount: rowCount * 4, context: context)
            let block = (x: Self.threadsPerBlock, y: 1, z: 1)

            var prepare = KernelArguments()
            prepare.append(output)
            prepare.append(outputGradient)
            prepare.append(lse)
            prepare.append(lse2)
            prepare.append(delta)
            prepare.append(Int64(rowCount))
            prepare.append(Int32(plan.heads))
            appendTextValid(textValid, plan: plan, to: &prepare)
            let rowsPerBlock = Self.threadsPerBlock / (headDim / 8)
            try prepareFunction.launch(
                grid: (x: (rowCount + rowsPerBlock - 1) / rowsPerBlock, y: 1, z: 1), block: block,
                sharedMemoryBytes: 0, stream: stream, arguments: prepare)

            func common(_ arguments: inout KernelArguments) {
                arguments.append(q)
                arguments.append(k)
                arguments.append(v)
                arguments.append(outputGradient)
                arguments.append(lse2)
                arguments.append(delta)
            }
            var keys = KernelArguments()
            common(&keys)
            keys.append(dk)
            keys.append(dv)
            keys.append(windowOfHead)
            keys.append(queryTileStart)
            keys.append(queryTiles)
            keys.append(Int32(plan.heads))
            keys.append(scale)
            appendTextValid(textValid, plan: plan, to: &keys)
            try keysFunction.launch(
                grid: (x: Self.keyBlocks(layout: plan.layout), y: plan.heads, z: batch), block: block,
                sharedMemoryBytes: Self.keysSharedMemoryBytes(headDim: headDim), stream: stream, arguments: keys)

            var queries = KernelArguments()
            common(&queries)
            queries.append(dq)
            queries.append(windowOfHead)
            queries.append(keyTileStart)
            queries.append(keyTiles)
            queries.append(Int32(plan.heads))
            queries.append(scale)
            appendTextValid(textValid, plan: plan, to: &queries)
            try queriesFunction.launch(
                grid: (x: Self.queryBlocks(layout: plan.layout), y: plan.heads, z: batch), block: block,
                sharedMemoryBytes: Self.queriesSharedMemoryBytes(headDim: headDim), stream: stream,
                arguments: queries)
        } catch {
            throw .driver(error)
        }
    }
}
