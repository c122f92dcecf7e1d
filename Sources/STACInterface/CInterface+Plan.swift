import SlidingTileAttention

// The plan functions of sta.h. Each one validates every argument, never throws or traps across the C
// boundary, and reports failures through its status and the caller's message buffer.

/// `STA_C_INTERFACE_VERSION` of the header this library implements.
@_cdecl("sta_interface_version")
public func sta_interface_version() -> Int32 { 2 }

/// The library's version string (`SlidingTileAttentionVersion.string`), NUL-terminated, static storage.
@_cdecl("sta_version")
public func sta_version() -> UnsafePointer<CChar> { libraryVersion }

/// `SlidingTileAttentionVersion.string` as a C string that lives as long as the process.
private nonisolated(unsafe) let libraryVersion: UnsafePointer<CChar> = {
    let bytes = Array(SlidingTileAttentionVersion.string.utf8CString)
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    storage.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(storage)
}()

/// Creates a plan; see `sta_plan_create` in sta.h. Returns nil (and a message) on failure.
@_cdecl("sta_plan_create")
public func sta_plan_create(
    _ rank: Int32, _ canvas: UnsafePointer<Int64>?, _ tile: UnsafePointer<Int64>?, _ textCount: Int64,
    _ textValid: Int64, _ heads: Int64, _ windows: UnsafePointer<Int64>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> OpaquePointer? {
    var result: OpaquePointer? = nil
    _ = withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let plan = try makePlan(
            rank: rank, canvas: canvas, tile: tile, textCount: textCount, textValid: textValid, heads: heads,
            windows: windows)
        result = HandleRegistry.register(PlanHandle(plan: plan))
    }
    return result
}

/// The validated core of `sta_plan_create`.
func makePlan(
    rank: Int32, canvas: UnsafePointer<Int64>?, tile: UnsafePointer<Int64>?, textCount: Int64, textValid: Int64,
    heads: Int64, windows: UnsafePointer<Int64>?
) throws(CInterfaceError) -> AttentionPlan {
    guard (1...3).contains(rank) else {
        throw .invalidArgument("rank is \(rank); allowed ranks are 1, 2 and 3 (L, H×W or T×H×W)")
    }
    let rank = Int(rank)
    let canvas = try required(canvas, "canvas")
    let tile = try required(tile, "tile")
    let windows = try required(windows, "windows")
    // Sizes beyond 2³¹ tokens per axis are not meaningful and keep every later product far from overflow.
    let axisLimit = Int(Int32.max)
    var canvasTokens = [Int](), tileTokens = [Int]()
    for axis in 0..<rank {
        canvasTokens.append(try checked(canvas[axis], "canvas axis \(axis)", in: 1...axisLimit))
        tileTokens.append(try checked(tile[axis], "tile axis \(axis)", in: 1...axisLimit))
    }
    let text = try checked(textCount, "text_count", in: 0...axisLimit)
    let valid: Int? = textValid < 0 ? nil : try checked(textValid, "text_valid", in: 0...text)
    let headCount = try checked(heads, "heads", in: 1...65_535)
    let layout: STALayout
    do throws(GeometryError) {
        layout = try STALayout(canvas: canvasTokens, tile: tileTokens, textCount: text, textValid: valid)
    } catch {
        throw CInterfaceError(.geometry, error.description)
    }
    // Bound the tables before building them: S positions of permutation tables, and the key tile lists.
    var paddedVideo = 1
    for axis in 0..<rank {
        let (next, overflow) = paddedVideo.multipliedReportingOverflow(by: layout.tileGrid[axis] * tileTokens[axis])
        guard !overflow, next <= maximumSequenceLength else { throw tooLong() }
        paddedVideo = next
    }
    guard paddedVideo + text <= maximumSequenceLength else { throw tooLong() }
    var headWindows = [Window]()
    for head in 0..<headCount {
        var tiles = [Int]()
        for axis in 0..<rank {
            let size = windows[head * rank + axis]
            guard let size = Int(exactly: size), size >= 1 else {
                throw CInterfaceError(
                    .geometry, "window of head \(head), axis \(axis) is \(size) tiles; every size must be at least 1")
            }
            tiles.append(size)
        }
        headWindows.append(Window(tiles: tiles))
    }
    // Σ over distinct windows of tileCount · key tiles per query tile, the size of the key tile lists.
    var keyTileEntries = 0
    for window in Set(headWindows) {
        var keys = layout.tileCount
        for axis in 0..<rank { keys *= min(window.tiles[axis], layout.tileGrid[axis]) }
        keyTileEntries += keys
        guard keyTileEntries <= maximumKeyTileEntries else {
            throw .invalidArgument(
                "the plan would list more than \(maximumKeyTileEntries) (query tile, key tile) pairs "
                    + "(\(layout.tileCount) tiles); use larger tiles or smaller windows")
        }
    }
    do throws(GeometryError) {
        return try AttentionPlan(layout: layout, headWindows: headWindows)
    } catch {
        throw CInterfaceError(.geometry, "head windows: \(error.description)")
    }
}

/// The longest sequence (padded video tokens plus text) a plan may have: 2²⁷ tokens, a thousand times
/// a 720p HunyuanVideo clip; keeps the permutation tables under 1.5 GB and every tensor extent within the
/// 32-bit indices of the CUDA kernels.
let maximumSequenceLength = 1 << 27

/// The most (query tile, key tile) pairs a plan's tables may list (4 bytes each).
let maximumKeyTileEntries = 1 << 28

private func tooLong() -> CInterfaceError {
    .invalidArgument(
        "the padded canvas plus text exceeds \(maximumSequenceLength) tokens, the longest sequence supported")
}

/// Destroys a plan; see sta.h.
@_cdecl("sta_plan_destroy")
public func sta_plan_destroy(
    _ plan: OpaquePointer?, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        guard let plan else { return }
        try HandleRegistry.remove(plan)
    }
}

/// Writes `value` of the plan behind `plan` to `output`, after checking the handle and that `output` is
/// not NULL (named `name` in the message).
private func writePlanValue<T>(
    _ plan: OpaquePointer?, _ output: UnsafeMutablePointer<T>?, _ name: String,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int, _ value: (PlanHandle) -> T
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        try required(output, name).pointee = value(handle)
    }
}

/// The sequence length S of tensors under the plan.
@_cdecl("sta_plan_sequence_length")
public func sta_plan_sequence_length(
    _ plan: OpaquePointer?, _ sequenceLength: UnsafeMutablePointer<Int64>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    writePlanValue(plan, sequenceLength, "sequence_length", error, errorLength) { handle in
        Int64(handle.layout.sequenceLength)
    }
}

/// The plan's sizes; any output may be nil.
@_cdecl("sta_plan_shape")
public func sta_plan_shape(
    _ plan: OpaquePointer?, _ heads: UnsafeMutablePointer<Int64>?, _ videoTokens: UnsafeMutablePointer<Int64>?,
    _ paddedVideoTokens: UnsafeMutablePointer<Int64>?, _ textCount: UnsafeMutablePointer<Int64>?,
    _ textValid: UnsafeMutablePointer<Int64>?, _ rasterLength: UnsafeMutablePointer<Int64>?,
    _ sequenceLength: UnsafeMutablePointer<Int64>?, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        let layout = handle.layout
        heads?.pointee = Int64(handle.plan.heads)
        videoTokens?.pointee = Int64(layout.videoTokenCount)
        paddedVideoTokens?.pointee = Int64(layout.paddedVideoTokenCount)
        textCount?.pointee = Int64(layout.text.count)
        textValid?.pointee = Int64(layout.text.valid)
        rasterLength?.pointee = Int64(handle.rasterLength)
        sequenceLength?.pointee = Int64(layout.sequenceLength)
    }
}

/// Mean over heads of the skipped fraction of video–video pairs.
@_cdecl("sta_plan_video_sparsity")
public func sta_plan_video_sparsity(
    _ plan: OpaquePointer?, _ sparsity: UnsafeMutablePointer<Double>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    writePlanValue(plan, sparsity, "sparsity", error, errorLength) { handle in handle.plan.videoSparsity }
}

/// Effective FLOPs of one forward pass (spec §3).
@_cdecl("sta_plan_effective_flops")
public func sta_plan_effective_flops(
    _ plan: OpaquePointer?, _ batch: Int64, _ headDim: Int64, _ flops: UnsafeMutablePointer<Double>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        let batch = try checked(batch, "batch", in: 1...Int(Int32.max))
        let headDim = try checked(headDim, "head_dim", in: 1...65_536)
        let output = try required(flops, "flops")
        output.pointee = handle.plan.effectiveFLOPs(batch: batch, headDim: headDim)
    }
}

/// For every raster-order video token, its tile-order sequence index.
@_cdecl("sta_plan_sequence_index")
public func sta_plan_sequence_index(
    _ plan: OpaquePointer?, _ indices: UnsafeMutablePointer<Int64>?, _ count: Int64,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        let indices = try required(indices, "indices")
        let videoTokens = handle.layout.videoTokenCount
        guard count == Int64(videoTokens) else {
            throw .invalidArgument("count is \(count); the plan has \(videoTokens) video tokens, one index each")
        }
        handle.sequenceIndexByRasterIndex.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { indices.update(from: base, count: videoTokens) }
        }
    }
}
