import CUDADriver
import STAGeometry
import STATensors

/// The Sliding Tile Attention backward pass for Hopper GPUs (compute capability 9.x: H100, H200, GH200),
/// `Kernels/sta_backward_sm90.cu`: TMA copies, wgmma tensor-core products (bf16/fp16 in, fp32
/// accumulate), a producer warpgroup and two consumer warpgroups, dq accumulated in float32 by bulk
/// reductions.
///
/// Interchangeable with the portable `STABackwardKernel`: the same tensors, semantics, plan tables and
/// workspace contract (sized by `workspaceByteCount(batch:)`, owned by the caller, nothing allocated per
/// call). With P = exp(scale · Q Kᵀ − L) over the pairs the plan allows and Δ_i = Σ_d dO_id · O_id:
///
///     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
///
/// Three kernels run in order on the caller's stream: `prepare` (L in log2 units and Δ per row, and the
/// float32 dq accumulator zeroed, all in the workspace); `main`, one block per `blockKeys` keys inside
/// one key tile or of the text, which streams the query chunks of every query tile that attends its
/// tile (`AttentionPlan.inverseKeyTileLists`) and the valid text, computes the five products with S and
/// P recomputed once, keeps dK and dV in registers and adds each chunk's dQ into the accumulator; and
/// `convert` (dq = scale · accumulator in the input dtype).
///
/// Not deterministic: the float32 additions into the dq accumulator happen in whatever order the blocks
/// reach them, so dq may differ in its last bits between runs (dk and dv do not). The portable kernel is
/// the deterministic path. Inputs at holes and padding text rows are read but never contribute; they
/// must be finite (the tile permutation writes zeros there), as the forward kernels require of K and V.
public struct STABackwardHopperKernel: AttentionBackwardKernel {
    /// Key rows per block of the main kernel (64 per consumer warpgroup).
    public static let blockKeys = 128
    /// Query rows per chunk of the main kernel's loop (one wgmma N of the transposed scores).
    public static let queriesPerChunk = 64
    /// Threads per block of the main kernel: one producer and two consumer warpgroups.
    public static let threadsPerBlock = 384
    /// Threads per block of the two row kernels (prepare, convert).
    public static let rowThreadsPerBlock = 256
    /// Entry points, in launch order.
    public static let prepareFunctionName = "sta_backward_prepare_sm90"
    public static let mainFunctionName = "sta_backward_sm90"
    public static let convertFunctionName = "sta_backward_dq_sm90"
    /// The NVRTC target: sm_90a, which wgmma and setmaxnreg need.
    public static let architecture = "sm_90a"
    /// Head dimensions the kernels are written for.
    public static let supportedHeadDims = [64, 128]
    /// Storage dtypes the kernels read.
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// Q/dO ring stages in shared memory: 3 for head dim 128, 4 for 64.
    public static func stages(headDim: Int) -> Int { headDim >= 128 ? 3 : 4 }

    /// Dynamic shared memory of the main kernel: 1024 alignment bytes, the key block's K and V, `stages`
    /// chunks of Q and dO, dSᵀ (blockKeys × queriesPerChunk 16-bit values), the chunk's float32 dQ and
    /// the chunk's LSE2 and Δ per stage. 215,552 bytes at head dim 128, 134,144 at 64.
    public static func sharedMemoryBytes(headDim: Int) -> Int {
        let stages = stages(headDim: headDim)
        return 1024 + 2 * blockKeys * headDim * 2 + stages * 2 * queriesPerChunk * headDim * 2
            + blockKeys * queriesPerChunk * 2 + queriesPerChunk * headDim * 4 + stages * 2 * queriesPerChunk * 4
    }

    /// Blocks of one (batch, head) of the main kernel: ⌈textCount / blockKeys⌉ text key blocks (first)
    /// plus tileCount · ⌈tileVolume / blockKeys⌉ video key blocks.
    public static func keyBlocks(layout: STALayout) -> Int { queryBlockCount(layout: layout, blockQueries: blockKeys) }

    /// The workspace's three arrays, byte offsets from its start: LSE2 and Δ (batch · heads · S floats
    /// each) and the float32 dq accumulator ((batch · heads · S + queriesPerChunk) · headDim floats: the
    /// last chunk of a sequence may run past its end), each at a 256-byte boundary.
    public struct WorkspaceLayout: Sendable, Equatable {
        public let lse2Offset: Int
        public let deltaOffset: Int
        public let accumulatorOffset: Int
        public let accumulatorBytes: Int
        public let byteCount: Int

        public init(rows: Int, headDim: Int) {
            func rounded(_ bytes: Int) -> Int { (bytes + 255) / 256 * 256 }
            lse2Offset = 0
            deltaOffset = rounded(rows * 4)
            accumulatorOffset = deltaOffset + rounded(rows * 4)
            accumulatorBytes = (rows + STABackwardHopperKernel.queriesPerChunk) * headDim * 4
            byteCount = accumulatorOffset + accumulatorBytes
        }
    }

    /// Bytes of device workspace a launch for `batch` needs (`WorkspaceLayout.byteCount`): about
    /// batch · heads · S · (4 · headDim + 8) bytes (1.5 GB for the hunyuan layout with 24 heads).
    public static func workspaceByteCount(plan: AttentionPlan, batch: Int, headDim: Int) -> Int {
        WorkspaceLayout(rows: batch * plan.heads * plan.layout.sequenceLength, headDim: headDim).byteCount
    }

    public let context: CUDAContext
    public let plan: AttentionPlan
    public let headDim: Int
    public let dtype: DType
    /// The shape the kernels were compiled for: `Shape.candidates(headDim:)`'s first whose main kernel
    /// compiled without local memory.
    public let shape: Shape
    let module: CUDAModule
    /// The three loaded kernels, in launch order.
    public let prepareFunction: CUDAFunction
    public let mainFunction: CUDAFunction
    public let convertFunction: CUDAFunction
    /// Int32 tables on the device: window per head and the plan's inverse lists.
    let windowOfHead: DeviceBuffer
    let queryTileStart: DeviceBuffer
    let queryTiles: DeviceBuffer
    /// Each head's visit order of its key tiles (`AttentionPlan.visitOrderByHead`).
    let visitOfHead: DeviceBuffer

    /// dq is accumulated by float32 atomics in no fixed order.
    public var isDeterministic: Bool { false }

    /// Validates the parameters, compiles the kernels for sm_90a (or takes them from `cache`) in the first
    /// shape of `Shape.candidates(headDim:)` whose main kernel has no local memory, loads them, allows the
    /// main kernel its shared memory and uploads the window table, the plan's inverse lists and each head's
    /// visit order.
    ///
    /// Throws `requiresHopper` unless the device is compute capability 9.x, `unsupportedHeadDim` unless
    /// `headDim` is 64 or 128, `unsupportedDType` unless `dtype` is bf16 or f16, `sharedMemoryTooSmall`
    /// when the device's opt-in limit is below `sharedMemoryBytes(headDim:)`, and `driver` when NVRTC or
    /// the driver fail. Cost: one NVRTC compile (a few seconds) per candidate tried on a cache miss (two at
    /// most), a module load per candidate, four small uploads and O(plan size) host work for the inverse
    /// lists.
    public init(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache = KernelCache()
    ) throws(STAKernelError) {
        guard context.computeCapability.major == 9 else {
            throw .requiresHopper(architecture: context.architecture)
        }
        try validateKernelShape(
            headDim: headDim, dtype: dtype, headDims: Self.supportedHeadDims, dtypes: Self.supportedDTypes)
        let shared = Self.sharedMemoryBytes(headDim: headDim)
        try validateSharedMemory(shared, on: context)
        self.context = context
        self.plan = plan
        self.headDim = headDim
        self.dtype = dtype
        let inverse = plan.inverseKeyTileLists()
        func upload(_ values: [Int32]) throws(CUDAError) -> DeviceBuffer {
            try DeviceBuffer(context: context, copying: values.isEmpty ? [0] : values)
        }
        do throws(CUDAError) {
            let candidates = Self.candidateOptions(plan: plan, headDim: headDim, dtype: dtype)
            let chosen = try firstWithoutLocalMemory(count: candidates.count) { (index) throws(CUDAError) in
                let image = try Self.kernelSource.image(
                    cache: cache, options: candidates[index].options, architecture: Self.architecture, context: context)
                let module = try CUDAModule(context: context, image: image)
                return (module, try module.function(named: Self.mainFunctionName).localBytes)
            }
            shape = candidates[chosen.index].shape
            module = chosen.loaded
            prepareFunction = try module.function(named: Self.prepareFunctionName)
            mainFunction = try module.function(named: Self.mainFunctionName)
            convertFunction = try module.function(named: Self.convertFunctionName)
            try mainFunction.setMaxDynamicSharedMemory(bytes: shared)
            windowOfHead = try upload(plan.windowIndexByHead)
            queryTileStart = try upload(inverse.queryTileStart)
            queryTiles = try upload(inverse.queryTiles)
            visitOfHead = try upload(plan.visitOrderByHead)
        } catch {
            throw .driver(error)
        }
    }

    /// Bytes of one of q, k, v, output, outputGradient for `batch`: batch · heads · S · headDim · 2.
    public func tensorByteCount(batch: Int) -> Int {
        batch * plan.heads * plan.layout.sequenceLength * headDim * dtype.byteCount
    }

    /// Bytes of device workspace a launch for `batch` needs (`workspaceByteCount(plan:batch:headDim:)`).
    public func workspaceByteCount(batch: Int) -> Int {
        Self.workspaceByteCount(plan: plan, batch: batch, headDim: headDim)
    }

    /// Throws `invalidParameter` unless `batch` is in 1...65535 and the main kernel's grid
    /// (batch · heads · `keyBlocks(layout:)` blocks) fits in 2³¹ − 1.
    public static func validate(batch: Int, heads: Int, layout: STALayout) throws(STAKernelError) {
        try validateGrid(batch: batch, heads: heads, blocksPerHead: keyBlocks(layout: layout), blocks: "key blocks")
    }

    /// The TMA descriptor the main kernel reads `buffer` through: the 3D view [batch · heads][S][headDim],
    /// boxes of 64 columns × 64 rows × 1 slice, 128-byte swizzle; rows past S read as zeros.
    func tensorMap(_ buffer: DeviceBuffer, batch: Int) throws(CUDAError) -> TensorMap {
        try headTensorMap(buffer, plan: plan, headDim: headDim, dtype: dtype, batch: batch, boxRows: 64)
    }

    /// Queues the backward pass on `stream` (nil: the default stream) and returns; allocates nothing.
    /// The contract of `AttentionBackwardKernel` (and of `STABackwardKernel.launch`): q, k, v, output,
    /// outputGradient in `dtype` and 16-byte aligned, lse float32, dq, dk, dv overwritten, `textValid` nil
    /// or `batch` Int32 lengths, `workspace` at least `workspaceByteCount(batch:)` bytes, 256-byte aligned.
    /// Throws `invalidParameter` for a batch or head count outside its range, a non-finite scale or a
    /// misaligned buffer, `foreignBuffer` or `bufferTooSmall`, `driver` when a launch fails.
    ///
    /// Cost: 2.5 · `plan.effectiveFLOPs(batch:headDim:)` tensor-core FLOPs (S and dP computed once), the
    /// inputs read about once per key block that attends them, and one float32 reduction of
    /// 64 · headDim values per (key block, query chunk) pair.
    public func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        outputGradient: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, workspace: DeviceBuffer, stream: CUDAStream?
    ) throws(STAKernelError) {
        try validateLaunch(batch: batch, heads: plan.heads, scale: scale)
        try Self.validate(batch: batch, heads: plan.heads, layout: plan.layout)
        let tensorBytes = tensorByteCount(batch: batch)
        let rowCount = batch * plan.heads * plan.layout.sequenceLength
        let layout = WorkspaceLayout(rows: rowCount, headDim: headDim)
        let checks: [(String, DeviceBuffer, Int, Int)] = [
            ("q", q, tensorBytes, 16), ("k", k, tensorBytes, 16), ("v", v, tensorBytes, 16),
            ("output", output, tensorBytes, 16), ("outputGradient", outputGradient, tensorBytes, 16),
            ("lse", lse, rowCount * 4, 4), ("dq", dq, tensorBytes, 16), ("dk", dk, tensorBytes, 16),
            ("dv", dv, tensorBytes, 16), ("workspace", workspace, layout.byteCount, 256),
        ]
        for (name, buffer, needed, alignment) in checks {
            try checkBuffer(name, buffer, needed: needed, alignment: alignment, context: context)
        }
        try validateTextValid(textValid, batch: batch, context: context)
        do throws(CUDAError) {
            let lse2 = try DeviceBuffer(borrowing: workspace.address, byteCount: rowCount * 4, context: context)
            let delta = try DeviceBuffer(
                borrowing: workspace.address(byteOffset: layout.deltaOffset), byteCount: rowCount * 4, context: context)
            let accumulator = try DeviceBuffer(
                borrowing: workspace.address(byteOffset: layout.accumulatorOffset), byteCount: layout.accumulatorBytes,
                context: context)
            let rowsPerBlock = Self.rowThreadsPerBlock / (headDim / 8)
            let rowGrid = (x: (rowCount + rowsPerBlock - 1) / rowsPerBlock, y: 1, z: 1)
            let rowBlock = (x: Self.rowThreadsPerBlock, y: 1, z: 1)

            var prepare = KernelArguments()
            prepare.append(output)
            prepare.append(outputGradient)
            prepare.append(lse)
            prepare.append(lse2)
            prepare.append(delta)
            prepare.append(accumulator)
            prepare.append(Int64(rowCount))
            prepare.append(Int32(plan.heads))
            appendTextValid(textValid, plan: plan, to: &prepare)
            try prepareFunction.launch(
                grid: rowGrid, block: rowBlock, sharedMemoryBytes: 0, stream: stream, arguments: prepare)

            var main = KernelArguments()
            main.append(try tensorMap(q, batch: batch))
            main.append(try tensorMap(k, batch: batch))
            main.append(try tensorMap(v, batch: batch))
            main.append(try tensorMap(outputGradient, batch: batch))
            main.append(lse2)
            main.append(delta)
            main.append(accumulator)
            main.append(dk)
            main.append(dv)
            main.append(windowOfHead)
            main.append(queryTileStart)
            main.append(queryTiles)
            main.append(visitOfHead)
            main.append(Int32(plan.heads))
            main.append(Int32(batch))
            main.append(scale)
            appendTextValid(textValid, plan: plan, to: &main)
            // The maps hold raw addresses of q, k, v and outputGradient: those buffers must outlive the work.
            try mainFunction.launch(
                grid: (x: batch * plan.heads * Self.keyBlocks(layout: plan.layout), y: 1, z: 1),
                block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: Self.sharedMemoryBytes(headDim: headDim),
                stream: stream, arguments: main)

            var convert = KernelArguments()
            convert.append(accumulator)
            convert.append(lse2)
            convert.append(dq)
            convert.append(Int64(rowCount))
            convert.append(scale)
            try convertFunction.launch(
                grid: rowGrid, block: rowBlock, sharedMemoryBytes: 0, stream: stream, arguments: convert)
        } catch {
            throw .driver(error)
        }
    }
}
