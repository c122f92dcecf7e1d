import CUDADriver
import STAGeometry
import STATensors

/// The Sliding Tile Attention forward pass for Hopper GPUs (compute capability 9.0: H100, H200, GH200),
/// `Kernels/sta_forward_sm90.cu`: TMA copies of K/V chunks into a shared-memory ring, wgmma tensor-core
/// products (bf16/fp16 in, fp32 accumulate), a producer warpgroup and two consumer warpgroups.
///
/// Interchangeable with the portable `STAForwardKernel`: the same tensors, the same semantics, the same
/// plan tables. One instance is the kernel specialised for one layout (canvas, tile, text), head dimension
/// and dtype, compiled by NVRTC for sm_90a (through `KernelCache`, so once per machine), loaded into a
/// context, with the plan's window tables uploaded.
///
/// Tensors are [batch, heads, S, headDim] contiguous in `dtype`, S = `plan.layout.sequenceLength` (video
/// tokens in tile order, holes included, then text); LSE is [batch, heads, S] float32 (natural log). Rows
/// that attend no key (holes, padding text) get O = 0 and LSE = −∞. K and V must hold finite values at
/// holes and padding text rows (the tile permutation writes zeros there).
///
/// Launch shape: a one-dimensional grid of `queryBlocks(layout:)` blocks per (batch, head), text query
/// blocks of every (batch, head) first, then `queryBlocksPerTile` blocks of `blockQueries` rows per video
/// tile; `threadsPerBlock` threads; `sharedMemoryBytes(headDim:)` of dynamic shared memory.
public struct STAForwardHopperKernel: AttentionForwardKernel {
    /// Query rows per block (two consumer warpgroups of 64).
    public static let blockQueries = 128
    /// Rows of one TMA box (boxes are 64 columns × `boxRows` rows; a Q block or K/V chunk is several).
    public static let boxRows = 64
    /// Threads per block: one producer and two consumer warpgroups.
    public static let threadsPerBlock = 384
    /// The kernel's entry point.
    public static let functionName = "sta_forward_sm90"
    /// The NVRTC target: sm_90a, which wgmma and setmaxnreg need.
    public static let architecture = "sm_90a"
    /// Head dimensions the kernel is written for.
    public static let supportedHeadDims = [64, 128]
    /// Storage dtypes the kernel reads and writes.
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// Keys per chunk of the inner loop (one wgmma N): 192 for head dim 128 when 192 divides the tile
    /// volume (the 384-token video tiles: two full chunks per tile), else 128 (head dim 64, and tiles of
    /// 128 or 256 tokens, which 192-key chunks would fill to two thirds). A chunk never spans two tiles.
    public static func blockKeys(headDim: Int, tileVolume: Int) -> Int {
        headDim >= 128 && tileVolume % 192 == 0 ? 192 : 128
    }

    /// The largest chunk `blockKeys` chooses for `headDim`, which sizes the shared memory.
    static func largestBlockKeys(headDim: Int) -> Int { headDim >= 128 ? 192 : 128 }

    /// K/V ring stages in shared memory: 2 for head dim 128, 4 for 64.
    public static func stages(headDim: Int) -> Int { headDim >= 128 ? 2 : 4 }

    /// Dynamic shared memory per block: the 128-row Q block and `stages` K and V chunks (each
    /// `blockKeys` · headDim 16-bit values), plus 1024 bytes to align the 128-byte swizzle atoms.
    /// 230,400 bytes for head dim 128, 148,480 for 64.
    public static func sharedMemoryBytes(headDim: Int) -> Int {
        1024 + (blockQueries + 2 * stages(headDim: headDim) * largestBlockKeys(headDim: headDim)) * headDim * 2
    }

    /// Query blocks per video tile: ⌈tileVolume / blockQueries⌉ (a block never straddles two tiles).
    public static func queryBlocksPerTile(layout: STALayout) -> Int {
        (layout.tileVolume + blockQueries - 1) / blockQueries
    }

    /// Query blocks of one (batch, head): ⌈textCount / blockQueries⌉ text blocks plus
    /// tileCount · queryBlocksPerTile video blocks.
    public static func queryBlocks(layout: STALayout) -> Int {
        queryBlockCount(layout: layout, blockQueries: blockQueries)
    }

    public let context: CUDAContext
    public let plan: AttentionPlan
    public let headDim: Int
    public let dtype: DType
    /// The loaded kernel (registers, local bytes and so on can be queried from it).
    public var function: CUDAFunction { loaded.function }
    let loaded: LoadedPlanKernel
    /// Each head's visit order of its tiles (`AttentionPlan.visitOrderByHead`), Int32 on the device.
    let visitOfHead: DeviceBuffer

    /// Validates the parameters, compiles the kernel for sm_90a (or takes it from `cache`), loads it,
    /// allows its shared memory, and uploads the plan's tables and each head's visit order as Int32.
    ///
    /// Throws `requiresHopper` unless the device is compute capability 9.x (use `STAForwardKernel`
    /// elsewhere), `unsupportedHeadDim` unless `headDim` is 64 or 128, `unsupportedDType` unless `dtype`
    /// is bf16 or f16, `sharedMemoryTooSmall` when the
    /// device's opt-in limit is below `sharedMemoryBytes(headDim:)`, and `driver` when NVRTC or the
    /// driver fail. Cost: one NVRTC compile (about a second) on a cache miss, a module load, four small
    /// uploads.
    public init(
        context: CUDAContext, plan: AttentionPlan, headDim: Int, dtype: DType, cache: KernelCache = KernelCache()
    ) throws(STAKernelError) {
        guard context.computeCapability.major == 9 else {
            throw .requiresHopper(architecture: context.architecture)
        }
        try Self.validate(headDim: headDim, dtype: dtype)
        let shared = Self.sharedMemoryBytes(headDim: headDim)
        try validateSharedMemory(shared, on: context)
        self.context = context
        self.plan = plan
        self.headDim = headDim
        self.dtype = dtype
        do throws(CUDAError) {
            loaded = try LoadedPlanKernel(
                context: context, plan: plan, source: Self.kernelSource,
                functionName: Self.functionName, options: Self.compileOptions(plan: plan, headDim: headDim, dtype: dtype),
                architecture: Self.architecture, sharedMemoryBytes: shared, cache: cache)
            visitOfHead = try DeviceBuffer(context: context, copying: plan.visitOrderByHead)
        } catch {
            throw .driver(error)
        }
    }

    /// Throws `unsupportedHeadDim` unless `headDim` is in `supportedHeadDims`, `unsupportedDType` unless
    /// `dtype` is in `supportedDTypes`.
    public static func validate(headDim: Int, dtype: DType) throws(STAKernelError) {
        try validateKernelShape(headDim: headDim, dtype: dtype, headDims: supportedHeadDims, dtypes: supportedDTypes)
    }

    /// Throws `invalidParameter` unless `batch` is in 1...65535 and the grid
    /// (batch · heads · `queryBlocks(layout:)` blocks) fits in 2³¹ − 1.
    public static func validate(batch: Int, heads: Int, layout: STALayout) throws(STAKernelError) {
        try validateGrid(batch: batch, heads: heads, blocksPerHead: queryBlocks(layout: layout), blocks: "query blocks")
    }

    /// The TMA descriptor the kernel reads `buffer` through: the 3D view [batch · heads][S][headDim],
    /// boxes of 64 columns × `boxRows` rows × 1 slice, 128-byte swizzle; rows past S read as zeros.
    func tensorMap(_ buffer: DeviceBuffer, batch: Int) throws(CUDAError) -> TensorMap {
        try headTensorMap(buffer, plan: plan, headDim: headDim, dtype: dtype, batch: batch, boxRows: Self.boxRows)
    }

    /// The TMA descriptor of packed key chunks (`Shape.keySlices` = k > 0): the 4D view [batch · heads]
    /// [⌊S / slice⌋][slice][headDim] of `buffer`, slice = tile H · tile W, boxes of 64 columns × the
    /// slice's real keys × k slices, 128-byte swizzle.
    func sliceTensorMap(_ buffer: DeviceBuffer, batch: Int, keySlices: Int) throws(CUDAError) -> TensorMap {
        let layout = plan.layout
        let slice = layout.tile.extents[1] * layout.tile.extents[2]
        let rows = layout.sequenceLength
        return try TensorMap.tiled(
            buffer: buffer, elementType: dtype == .bfloat16 ? .bfloat16 : .float16,
            dimensions: [headDim, slice, rows / slice, batch * plan.heads],
            strideBytes: [headDim * 2, slice * headDim * 2, rows * headDim * 2],
            boxDimensions: [64, Shape.sliceKeys(layout: layout), keySlices, 1], swizzle: .bytes128,
            l2Promotion: .bytes128)
    }

    /// Queues O = softmax(scale · Q Kᵀ + M) V and its log-sum-exp on `stream` (nil: the default stream).
    ///
    /// Every buffer must live on the kernel's device and hold at least `tensorByteCount(batch:)`
    /// (q, k, v, output) or `lseByteCount(batch:)` (lse) bytes; q, k and v must be 16-byte aligned (any
    /// allocation is). `textValid` is nil (the plan's valid text length for every row) or `batch` Int32
    /// valid lengths on the device (clamped into 0...text count by the kernel). `batch` must pass
    /// `validate(batch:heads:layout:)` and `scale` be positive and finite. Builds five tensor maps
    /// (host-side encodings of a few microseconds each), then returns once queued; the kernel reads q,
    /// k, v (through the maps, and q also directly where it gathers the real rows of padded tiles) and
    /// overwrites every row of output and lse. Cost on the GPU: about 4 · headDim · (attended pairs) FLOPs.
    public func launch(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer, batch: Int,
        scale: Float, textValid: DeviceBuffer?, stream: CUDAStream?
    ) throws(STAKernelError) {
        try Self.validate(batch: batch, heads: plan.heads, layout: plan.layout)
        guard scale.isFinite, scale > 0 else {
            throw .invalidParameter(
                what: "scale", value: "\(scale)", allowed: "a positive finite number (usually 1/√headDim)")
        }
        try validateBuffers(
            q: q, k: k, v: v, output: output, lse: lse, textValid: textValid, batch: batch, context: context)
        do throws(CUDAError) {
            var arguments = KernelArguments()
            arguments.append(try tensorMap(q, batch: batch))
            arguments.append(try tensorMap(k, batch: batch))
            arguments.append(try tensorMap(v, batch: batch))
            arguments.append(output)
            arguments.append(lse)
            loaded.appendPlanTables(to: &arguments)
            arguments.append(visitOfHead)
            arguments.append(Int32(plan.heads))
            arguments.append(Int32(batch))
            arguments.append(scale)
            arguments.append(q)  // packed query blocks gather their rows from q directly
            appendTextValid(textValid, plan: plan, to: &arguments)
            let keySlices = Shape.choose(headDim: headDim, layout: plan.layout).keySlices
            if keySlices > 0 {
                arguments.append(try sliceTensorMap(k, batch: batch, keySlices: keySlices))
                arguments.append(try sliceTensorMap(v, batch: batch, keySlices: keySlices))
            } else {  // unused by the kernel
                arguments.append(try tensorMap(k, batch: batch))
                arguments.append(try tensorMap(v, batch: batch))
            }
            // The maps hold raw addresses of q, k and v: like output, those buffers must outlive the work.
            try function.launch(
                grid: (x: batch * plan.heads * Self.queryBlocks(layout: plan.layout), y: 1, z: 1),
                block: (x: Self.threadsPerBlock, y: 1, z: 1),
                sharedMemoryBytes: Self.sharedMemoryBytes(headDim: headDim), stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }
}
