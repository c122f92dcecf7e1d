import CUDADriver
import STATensors

/// The device half of the window search (`Kernels/sta_window_error.cu`): turning a capture's stored
/// q, k, v into what attention reads, and summing the error of a sparse output against the full one per
/// (batch, head), so that only a few numbers per (candidate, head) leave the device.
///
/// Every size is a run-time argument, so the module is compiled once per architecture (sm_80 and newer)
/// and taken from `KernelCache` afterwards. Tensors are [B, H, S, D] contiguous; `rowKinds` is one byte per
/// sequence position (`RowKind`), uploaded once per layout.
///
/// - `prepare`: converts a tensor stored as f32, f16, bf16 or f64 into bf16 or f16 (or only checks one
///   already in that dtype) and counts the non-finite values in the rows attention reads, with the flat
///   index of the first. Cost: one pass over the tensor (memory bound).
/// - `errorSums`: Σ (sparse − full)², Σ |sparse − full| and Σ full² in fp64 over the compared rows, one
///   triple per (batch·head, block of `rowsPerBlock(sequenceLength:)` rows), written to a partial table.
///   Cost: one read of both outputs (2 · B·H·S·D · 2 bytes) and 24 bytes per block written.
/// - `sumBlocks`: each (candidate, batch·head)'s blocks added up in a fixed order, so results do not
///   depend on the schedule: three doubles per (candidate, batch·head), all the host needs to download.
public struct WindowErrorKernels: Sendable {
    /// What a sequence position is to the search (the byte the kernels read).
    public enum RowKind: UInt8, Sendable {
        /// Never read by attention (a hole, padding text): neither converted nor checked.
        case unread = 0
        /// Read by attention but not compared (valid text: a text query attends every key under any window).
        case read = 1
        /// Read and compared (a real video token).
        case compared = 2
    }

    /// Threads per block of both kernels (one warp per row).
    public static let threadsPerBlock = 256
    /// The entry points.
    public static let prepareFunctionName = "sta_search_prepare"
    public static let errorSumsFunctionName = "sta_search_error_sums"
    public static let sumBlocksFunctionName = "sta_search_sum_blocks"
    /// Dtypes attention may run in (what the CUDA forward kernels read).
    public static let computeDTypes: [DType] = [.bfloat16, .float16]

    /// The file name NVRTC compiles the kernels under.
    public static var sourceName: String { "sta_window_error.cu" }

    /// The translation unit: one file, no headers.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: embedded("sta_window_error.cu", PackageResources.sta_window_error_cu), headers: [])
    }

    /// The NVRTC options for `architecture` (e.g. "sm_90a"): C++17 and the target only.
    public static func compileOptions(architecture: String) -> [String] {
        ["--std=c++17", "--gpu-architecture=\(architecture)"]
    }

    /// The kind number the kernels take for a stored dtype; nil for a dtype they do not read.
    public static func storageKind(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: return 0
        case .float16: return 1
        case .bfloat16: return 2
        case .float64: return 3
        default: return nil
        }
    }

    /// Rows one `errorSums` block covers: S / 64 rounded up to a multiple of the 8 warps, at least 64, so
    /// a (batch, head) of a HunyuanVideo layer (S = 115,456) is split over 64 blocks and a small one is
    /// one block.
    public static func rowsPerBlock(sequenceLength: Int) -> Int {
        let warps = threadsPerBlock / 32
        let rows = (sequenceLength + 63) / 64
        return max(64, (rows + warps - 1) / warps * warps)
    }

    /// Blocks per (batch, head) of `errorSums`: ⌈S / rowsPerBlock⌉.
    public static func blocksPerHead(sequenceLength: Int) -> Int {
        let rows = rowsPerBlock(sequenceLength: sequenceLength)
        return (sequenceLength + rows - 1) / rows
    }

    public let context: CUDAContext
    let module: CUDAModule
    let prepareFunction: CUDAFunction
    let errorSumsFunction: CUDAFunction
    let sumBlocksFunction: CUDAFunction

    /// Compiles the kernels for `context.architecture` (or takes them from `cache`) and loads them.
    /// Throws `unsupportedDevice` below compute capability 8.0 (the bf16 conversions need sm_80) and
    /// `driver` when NVRTC or the driver fail. Cost: one NVRTC compile (about 0.1 s) on a cache miss.
    public init(context: CUDAContext, cache: KernelCache = KernelCache()) throws(STAKernelError) {
        guard context.computeCapability.major >= 8 else {
            throw .unsupportedDevice(architecture: context.architecture, minimum: "sm_80")
        }
        self.context = context
        do throws(CUDAError) {
            let image = try Self.kernelSource.image(
                cache: cache, options: Self.compileOptions(architecture: context.architecture),
                architecture: context.architecture, context: context)
            module = try CUDAModule(context: context, image: image)
            prepareFunction = try module.function(named: Self.prepareFunctionName)
            errorSumsFunction = try module.function(named: Self.errorSumsFunctionName)
            sumBlocksFunction = try module.function(named: Self.sumBlocksFunctionName)
        } catch {
            throw .driver(error)
        }
    }

    /// Queues the conversion of `source` ([rows = B·H·S, headDim] stored as `sourceDType`) into
    /// `destination` (`dtype`, bf16 or f16; it may be `source` itself when that already holds `dtype`),
    /// with zeros in the rows of kind `unread` (attention never reads them, but the Hopper kernel needs
    /// them finite). Adds the count of non-finite values (after rounding to `dtype`) in rows whose kind is not
    /// `unread` to `counters[0]` and lowers `counters[1]` to the flat index of the first: `counters` is two
    /// UInt64 the caller sets to 0 and UInt64.max first. Throws `unsupportedDType`, `bufferTooSmall`,
    /// `foreignBuffer` or `invalidParameter` before queueing anything.
    public func prepare(
        source: DeviceBuffer, sourceDType: DType, destination: DeviceBuffer, dtype: DType, rowKinds: DeviceBuffer,
        rows: Int, sequenceLength: Int, headDim: Int, counters: DeviceBuffer, stream: CUDAStream? = nil
    ) throws(STAKernelError) {
        guard let sourceKind = Self.storageKind(sourceDType) else {
            throw .unsupportedDType(sourceDType, allowed: [.float32, .float16, .bfloat16, .float64])
        }
        let kind = try Self.computeKind(dtype)
        guard destination !== source || sourceDType == dtype else {
            throw .invalidParameter(
                what: "destination", value: "the source buffer (\(sourceDType))",
                allowed: "another buffer, unless the source is already in \(dtype)")
        }
        try Self.checkSizes(rows: rows, sequenceLength: sequenceLength, headDim: headDim)
        let elements = rows * headDim
        try checkBuffer("source", source, needed: elements * sourceDType.byteCount, alignment: sourceDType.byteCount, context: context)
        try checkBuffer("destination", destination, needed: elements * 2, alignment: 2, context: context)
        try checkBuffer("rowKinds", rowKinds, needed: sequenceLength, alignment: 1, context: context)
        try checkBuffer("counters", counters, needed: 16, alignment: 8, context: context)
        var arguments = KernelArguments()
        arguments.append(source)
        arguments.append(Int32(sourceKind))
        arguments.append(destination)
        arguments.append(kind)
        arguments.append(rowKinds)
        arguments.append(UInt64(rows))
        arguments.append(Int32(sequenceLength))
        arguments.append(Int32(headDim))
        arguments.append(counters)
        // Enough warps to cover the device a few times over; each strides over the rows.
        let warpsPerBlock = Self.threadsPerBlock / 32
        let blocks = max(1, min((rows + warpsPerBlock - 1) / warpsPerBlock, context.multiprocessorCount * 16))
        do throws(CUDAError) {
            try prepareFunction.launch(
                grid: (x: blocks, y: 1, z: 1), block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: 0,
                stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }

    /// Queues the error sums of `sparse` against `full` (both [batchHeads, S, headDim] in `dtype`) into
    /// `partials` from `partialOffset` (in doubles): 3 · batchHeads · blocksPerHead(sequenceLength:)
    /// doubles, ordered (batch·head, block, [Σ d², Σ |d|, Σ full²]). Throws before queueing anything for a
    /// buffer too small, on another device or misaligned, or a size out of range.
    public func errorSums(
        sparse: DeviceBuffer, full: DeviceBuffer, dtype: DType, rowKinds: DeviceBuffer, batchHeads: Int,
        sequenceLength: Int, headDim: Int, partials: DeviceBuffer, partialOffset: Int = 0, stream: CUDAStream? = nil
    ) throws(STAKernelError) {
        let kind = try Self.computeKind(dtype)
        try Self.checkSizes(rows: batchHeads * sequenceLength, sequenceLength: sequenceLength, headDim: headDim)
        let blocksPerHead = Self.blocksPerHead(sequenceLength: sequenceLength)
        let blocks = batchHeads * blocksPerHead
        guard blocks <= Int(Int32.max), partialOffset >= 0 else {
            throw .invalidParameter(
                what: "error-sum blocks", value: "\(blocks) at offset \(partialOffset)", allowed: "1...\(Int32.max), offset ≥ 0")
        }
        let tensorBytes = batchHeads * sequenceLength * headDim * 2
        try checkBuffer("sparse", sparse, needed: tensorBytes, alignment: 2, context: context)
        try checkBuffer("full", full, needed: tensorBytes, alignment: 2, context: context)
        try checkBuffer("rowKinds", rowKinds, needed: sequenceLength, alignment: 1, context: context)
        try checkBuffer("partials", partials, needed: (partialOffset + 3 * blocks) * 8, alignment: 8, context: context)
        // The table starts `partialOffset` doubles in; `partials` (the caller's) owns the memory.
        let table = UInt64(partials.address) + UInt64(partialOffset * 8)
        var arguments = KernelArguments()
        arguments.append(sparse)
        arguments.append(full)
        arguments.append(kind)
        arguments.append(rowKinds)
        arguments.append(Int32(sequenceLength))
        arguments.append(Int32(headDim))
        arguments.append(Int32(blocksPerHead))
        arguments.append(Int32(Self.rowsPerBlock(sequenceLength: sequenceLength)))
        arguments.append(table)
        do throws(CUDAError) {
            try errorSumsFunction.launch(
                grid: (x: blocks, y: 1, z: 1), block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: 0,
                stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }

    /// Queues the fixed-order sums of `partials` (`groups` groups of `blocksPerHead` triples, as
    /// `errorSums` writes them one group per (candidate, batch·head)) into `sums`: 3 · groups doubles,
    /// (group, [Σ d², Σ |d|, Σ full²]). Throws before queueing anything for a buffer too small, on another
    /// device or misaligned, or a count out of range.
    public func sumBlocks(
        partials: DeviceBuffer, groups: Int, blocksPerHead: Int, sums: DeviceBuffer, stream: CUDAStream? = nil
    ) throws(STAKernelError) {
        guard groups >= 1, (1...Int(Int32.max)).contains(blocksPerHead), 3 * groups <= Int(Int32.max) * Self.threadsPerBlock
        else {
            throw .invalidParameter(
                what: "groups × blocks per head", value: "\(groups) × \(blocksPerHead)",
                allowed: "at least one group of 1...\(Int32.max) blocks")
        }
        try checkBuffer("partials", partials, needed: 3 * groups * blocksPerHead * 8, alignment: 8, context: context)
        try checkBuffer("sums", sums, needed: 3 * groups * 8, alignment: 8, context: context)
        var arguments = KernelArguments()
        arguments.append(partials)
        arguments.append(Int32(blocksPerHead))
        arguments.append(UInt64(groups))
        arguments.append(sums)
        do throws(CUDAError) {
            try sumBlocksFunction.launch(
                grid: (x: (3 * groups + Self.threadsPerBlock - 1) / Self.threadsPerBlock, y: 1, z: 1),
                block: (x: Self.threadsPerBlock, y: 1, z: 1), sharedMemoryBytes: 0, stream: stream, arguments: arguments)
        } catch {
            throw .driver(error)
        }
    }

    /// The kind number of a compute dtype; throws `unsupportedDType` unless it is bf16 or f16.
    static func computeKind(_ dtype: DType) throws(STAKernelError) -> Int32 {
        guard computeDTypes.contains(dtype), let kind = storageKind(dtype) else {
            throw .unsupportedDType(dtype, allowed: computeDTypes)
        }
        return kind
    }

    /// Throws `invalidParameter` unless the sizes are positive and S and D fit an Int32.
    static func checkSizes(rows: Int, sequenceLength: Int, headDim: Int) throws(STAKernelError) {
        guard rows >= 1 else { throw .invalidParameter(what: "rows", value: "\(rows)", allowed: "1 or more") }
        guard (1...Int(Int32.max)).contains(sequenceLength) else {
            throw .invalidParameter(what: "sequence length", value: "\(sequenceLength)", allowed: "1...\(Int32.max)")
        }
        guard (1...Int(Int32.max)).contains(headDim) else {
            throw .invalidParameter(what: "head dim", value: "\(headDim)", allowed: "1...\(Int32.max)")
        }
    }
}
