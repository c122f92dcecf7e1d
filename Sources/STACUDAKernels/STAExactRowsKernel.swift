import CUDADriver
import STAGeometry
import STATensors

/// The rows a fast kernel cannot represent in fp32, found after it on the same stream and redone in float64
/// (`Kernels/sta_exact_rows.cu`, plain CUDA, sm_80 and newer, after any forward or backward kernel).
///
/// - `launchForward`, after a forward kernel: every real row (it attends at least itself) whose
///   log-sum-exp is NaN or ±∞ — what an fp32 overflow of |q·k| · scale (to +∞, or of every score to −∞)
///   leaves, and what the fast kernels write for a row whose output holds a non-finite element (the
///   unnormalised P·V sum overflowed) — is recomputed in float64 as the reference computes it, its output
///   rounded to the storage type and its log-sum-exp to Float (±∞ where it passes the fp32 range). Rows
///   whose inputs hold NaN or ±∞ come out NaN exactly as the reference's do (the NaN contract is
///   unchanged). Other rows are read, never written.
/// - `launchBackward`, after a backward kernel: every row that attends something and whose log-sum-exp is
///   NaN, ±∞ or of magnitude at least `backwardLSELimit` — where fp32 cannot carry L, so P = exp(s − L)
///   cannot be recomputed from it — gets its L recomputed in float64 from its scores and its dq row
///   redone in float64; every key such a row attends gets its dk and dv rows redone in float64 over all the
///   queries that attend it (three launches: clear the key marks, the rows, the keys). The results are the
///   reference's (`ReferenceAttention.backward` with L recomputed); NaN inputs give NaN in every gradient
///   row they reach, as on the CPU.
///
/// One instance is the kernels specialised for one layout, head dimension and dtype (the same problem
/// constants as the fast kernels), compiled by NVRTC through `KernelCache`, with the plan's tables and
/// their inverse uploaded.
///
/// Cost on inputs without such rows: one read of the log-sum-exp, B · H · S · 4 bytes (each warp of the
/// forward scans 32 rows), plus (backward) clearing B · H · S bytes of marks. A redone forward
/// row costs two passes over its keys (4 · headDim double-precision flops per key each) in one warp; a
/// redone backward row three passes over its keys, and each marked key one pass over its queries (about
/// 8 · headDim double-precision flops per query) — a marked text row marks every key of its (batch, head),
/// whose backward then runs in float64.
public struct STAExactRowsKernel: Sendable {
    /// Threads per block: one warp per row (the forward: one warp per 32 rows, scanned a row per lane).
    public static let threadsPerBlock = 256
    /// Entry points: the forward's, then the backward's three in launch order.
    public static let forwardFunctionName = "sta_exact_rows_forward"
    public static let backwardClearFunctionName = "sta_exact_rows_backward_clear"
    public static let backwardQueriesFunctionName = "sta_exact_rows_backward_queries"
    public static let backwardKeysFunctionName = "sta_exact_rows_backward_keys"
    /// |lse| from which `launchBackward` redoes a row (fp32 holds L only to 2⁻⁹ there).
    public static let backwardLSELimit: Float = 32768
    /// Head dimensions and dtypes: those of the fast kernels.
    public static let supportedHeadDims = [64, 128]
    public static let supportedDTypes: [DType] = [.bfloat16, .float16]

    /// The file name NVRTC compiles the kernels under.
    public static var sourceName: String { "sta_exact_rows.cu" }

    /// The translation unit NVRTC compiles: `sta_exact_rows.cu` with `sta_common.cuh`.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: embedded("sta_exact_rows.cu", PackageResources.sta_exact_rows_cu), headers: [.common])
    }

    /// The NVRTC options for `plan`, `headDim` and `dtype` on `architecture`: the problem constants every
    /// kernel shares and `STA_EXACT_THREADS`. Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String) -> [String] {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + ["-DSTA_EXACT_THREADS=\(threadsPerBlock)"]
    }

    /// Bytes of device workspace `launchBackward` needs for `batch`: the float64 L of every row
    /// (B · H · S doubles) then one mark byte per row, from the next 256-byte boundary.
    public static func backwardWorkspaceByteCount(plan: AttentionPlan, batch: Int) -> Int {
        let rows = batch * plan.heads * plan.layout.sequenceLength
        return (rows * 8 + 255) / 256 * 256 + rows
    }

    /// Blocks of the forward's launch over `rowCount` rows (one warp per 32 rows).
    public static func forwardBlocks(rowCount: Int) -> Int {
        let rows = threadsPerBlock
        return (rowCount + rows - 1) / rows
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
    public let backwardClearFunction: CUDAFunction
    public let backwardQueriesFunction: CUDAFunction
    public let backwardKeysFunction: CUDAFunction
    /// The inverse of the plan's lists (key tile → query tiles), for the backward's key rows.
    let queryTileStart: DeviceBuffer
    let queryTiles: DeviceBuffer

    /// Validates the parameters, compiles the kernels for `context.architecture` (or takes them from
    /// `cache`), loads them and uploads the plan's tables and their inverse. Throws `unsupportedHeadDim`,
    /// `unsupportedDType`, `unsupportedDevice` below compute capability 8.0, and `driver` when NVRTC or the
    /// driver fail. Cost: one NVRTC compile (about a second) on a cache miss, a module load, five small
    /// uploads, O(plan size) host work for the inverse lists.
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
            backwardClearFunction = try loaded.module.function(named: Self.backwardClearFunctionName)
            backwardQueriesFunction = try loaded.module.function(named: Self.backwardQueriesFunctionName)
            backwardKeysFunction = try loaded.module.function(named: Self.backwardKeysFunctionName)
            let inverse = plan.inverseKeyTileLists()
            // A zero-byte buffer has address 0; give every table at least one entry.
            queryTileStart = try DeviceBuffer(context: context, copying: inverse.queryTileStart)
            queryTiles = try DeviceBuffer(context: context, copying: inverse.queryTiles.isEmpty ? [0] : inverse.queryTiles)
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
        guard rowCount > 0 else { return }
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
        do throws(CUDAError) {
            try forwardFunction.launch(
                grid: (x: Self.forwardBlocks(rowCount: rowCount), y: 1, z: 1),
                block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: 0, stream: stream,
                arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }

    /// Queues the backward pass's float64 rows on `stream`, after the backward kernels that wrote `dq`, `dk`
    /// and `dv` on the same stream; the tensors, `lse`, `scale` and `textValid` are those the backward
    /// kernels were given. `workspace` holds `backwardWorkspaceByteCount` bytes (256-byte aligned) that
    /// nothing else touches until the stream has run the work. Throws `bufferTooSmall` for a short
    /// workspace, `driver` when a launch fails.
    public func launchBackward(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, outputGradient: DeviceBuffer,
        lse: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, batch: Int, scale: Float,
        textValid: DeviceBuffer?, workspace: DeviceBuffer, stream: CUDAStream?
    ) throws(STAKernelError) {
        let rowCount = batch * plan.heads * plan.layout.sequenceLength
        guard rowCount > 0 else { return }
        let needed = Self.backwardWorkspaceByteCount(plan: plan, batch: batch)
        guard workspace.byteCount >= needed else {
            throw .bufferTooSmall(name: "exact-rows workspace", byteCount: workspace.byteCount, needed: needed)
        }
        do throws(CUDAError) {
            let exactLSE = try DeviceBuffer(borrowing: workspace.address, byteCount: rowCount * 8, context: context)
            let marks = try DeviceBuffer(
                borrowing: workspace.address(byteOffset: (rowCount * 8 + 255) / 256 * 256), byteCount: rowCount,
                context: context)

            var clear = KernelArguments()
            clear.append(marks)
            clear.append(Int64(rowCount))
            try backwardClearFunction.launch(
                grid: (x: (rowCount + Self.threadsPerBlock - 1) / Self.threadsPerBlock, y: 1, z: 1),
                block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: 0, stream: stream, arguments: clear)

            func tensors(_ arguments: inout KernelArguments) {
                for buffer in [q, k, v, output, outputGradient, lse] { arguments.append(buffer) }
            }
            var queries = KernelArguments()
            tensors(&queries)
            queries.append(dq)
            queries.append(exactLSE)
            queries.append(marks)
            loaded.appendPlanTables(to: &queries)
            queries.append(Int32(plan.heads))
            queries.append(Int64(rowCount))
            queries.append(scale)
            appendTextValid(textValid, plan: plan, to: &queries)
            try launchRows(backwardQueriesFunction, rowCount: rowCount, arguments: queries, stream: stream)

            var keys = KernelArguments()
            tensors(&keys)
            keys.append(dk)
            keys.append(dv)
            keys.append(exactLSE)
            keys.append(marks)
            keys.append(loaded.windowOfHead)
            keys.append(queryTileStart)
            keys.append(queryTiles)
            keys.append(Int32(plan.heads))
            keys.append(Int64(rowCount))
            keys.append(scale)
            appendTextValid(textValid, plan: plan, to: &keys)
            try launchRows(backwardKeysFunction, rowCount: rowCount, arguments: keys, stream: stream)
        } catch {
            throw .driver(error)
        }
    }

    /// Launches `function` with one warp per row.
    private func launchRows(
        _ function: CUDAFunction, rowCount: Int, arguments: KernelArguments, stream: CUDAStream?
    ) throws(CUDAError) {
        try function.launch(
            grid: (x: Self.blocks(rowCount: rowCount), y: 1, z: 1), block: (x: Self.threadsPerBlock, y: 1, z: 1),
            sharedMemoryBytes: 0, stream: stream, arguments: arguments)
    }
}
