import STACPUKernelsC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only description of one backward call that every worker thread shares: raw pointers into
/// the caller's buffers, the per-row statistics and both schedules, valid for the duration of the call.
struct BackwardJob: AttendingRowLists, @unchecked Sendable {
    var kind: StorageKind
    /// Which implementation of the C micro-kernels runs (`sta_cpu_best_level()` unless a test asks).
    var level: Int32
    var q: UnsafeRawPointer
    var k: UnsafeRawPointer
    var v: UnsafeRawPointer
    var outputGradient: UnsafeRawPointer
    var dq: UnsafeMutablePointer<Float>
    var dk: UnsafeMutablePointer<Float>
    var dv: UnsafeMutablePointer<Float>
    /// Per row of [batch, heads, S]: L · log2 e, or +∞ for a row that attends nothing (then P = 0).
    var lseLog2: UnsafePointer<Float>
    /// Per row: Δ = Σ_d dO · O, 0 for a row that attends nothing.
    var delta: UnsafePointer<Float>
    var sequenceLength: Int
    var headDim: Int
    /// The softmax scale (dQ and dK carry it).
    var scale: Float
    /// scale · log2 e: scores come out in base-2 units for the kernels' 2^x.
    var scoreScale: Float
    /// Rows per chunk of the inner loop (keys in the dQ pass, queries in the dK/dV pass).
    var chunk: Int
    var tileCount: Int
    /// Query heads (batch row of a work item = batchHead / heads).
    var heads: Int
    var textStart: Int
    /// Valid text length per batch row.
    var textValid: UnsafePointer<Int32>
    var attendingRows: UnsafePointer<Int32>
    /// Real video rows at the head of `attendingRows` (the text rows follow).
    var realVideoCount: Int
    var tileRealStart: UnsafePointer<Int32>
    /// The plan's CSR (query tile → key tiles).
    var keyTileStart: UnsafePointer<Int32>
    var keyTiles: UnsafePointer<Int32>
    /// Its inverse (key tile → query tiles).
    var queryTileStart: UnsafePointer<Int32>
    var queryTiles: UnsafePointer<Int32>
    /// Longest row list of any item, either pass.
    var maximumListCount: Int
}

/// Per-thread scratch and the two loops of the backward pass.
///
/// Each item owns a block of up to `rowStride` rows (lanes of every vector) and streams the rows on the
/// other side in chunks of `job.chunk`, recomputing P from the scores and the saved log-sum-exp:
///
/// - dK/dV item (lanes = key rows): Kᵀ (pre-scaled by scale · log2 e) and Vᵀ [headDim][rows]; per chunk
///   of query rows Q and dO [chunk][headDim] (natural layout, the `y` side of the micro-kernel):
///   Sᵀ = K Qᵀ, dPᵀ = V dOᵀ, P = 2^(S − L), dS = P ∘ (dP − Δ), dVᵀ += dOᵀ P, dKᵀ += Qᵀ dS.
/// - dQ item (lanes = query rows), like the forward: Qᵀ (pre-scaled) and dOᵀ [headDim][rows]; per chunk
///   of keys K and V [chunk][headDim]: S = Q Kᵀ, dP = dO Vᵀ, dS as above, dQᵀ += Kᵀ dS.
///
/// Every product is `sta_cpu_product` (a 16×6 register-blocked kernel). Scratch: 4 · (4 · rows · headDim + 2 · chunk · headDim
/// + 2 · chunk · rows + …) bytes, about 512 KiB for headDim 128 and 128-row chunks.
struct BackwardWorker {
    let job: BackwardJob
    let rowStride = AttentionSchedule.queryBlockRows
    /// [headDim][rowStride] each: the item's own rows transposed, and two accumulators.
    let ownA: UnsafeMutablePointer<Float>
    let ownB: UnsafeMutablePointer<Float>
    let accumulatorA: UnsafeMutablePointer<Float>
    let accumulatorB: UnsafeMutablePointer<Float>
    /// [chunk][rowStride] each: scores then P, and dP then dS.
    let probabilities: UnsafeMutablePointer<Float>
    let scoreGradients: UnsafeMutablePointer<Float>
    /// [chunk][headDim] each: the streamed rows, converted.
    let chunkA: UnsafeMutablePointer<Float>
    let chunkB: UnsafeMutablePointer<Float>
    /// Per streamed row (dK/dV pass) or per lane (dQ pass): L · log2 e and Δ.
    let rowLSE: UnsafeMutablePointer<Float>
    let rowDelta: UnsafeMutablePointer<Float>
    let rowBuffer: UnsafeMutablePointer<Float>
    let list: UnsafeMutablePointer<Int32>

    init(job: BackwardJob) {
        self.job = job
        let d = job.headDim
        ownA = .allocate(capacity: rowStride * d)
        ownB = .allocate(capacity: rowStride * d)
        accumulatorA = .allocate(capacity: rowStride * d)
        accumulatorB = .allocate(capacity: rowStride * d)
        probabilities = .allocate(capacity: rowStride * job.chunk)
        scoreGradients = .allocate(capacity: rowStride * job.chunk)
        chunkA = .allocate(capacity: job.chunk * d)
        chunkB = .allocate(capacity: job.chunk * d)
        rowLSE = .allocate(capacity: max(rowStride, job.chunk))
        rowDelta = .allocate(capacity: max(rowStride, job.chunk))
        rowBuffer = .allocate(capacity: d + 8)
        list = .allocate(capacity: max(1, job.maximumListCount))
    }

    func deallocate() {
        for pointer in [
            ownA, ownB, accumulatorA, accumulatorB, probabilities, scoreGradients, chunkA, chunkB, rowLSE, rowDelta,
            rowBuffer,
        ] {
            pointer.deallocate()
        }
        list.deallocate()
    }

    /// Loads the item's own rows of `source` transposed into `destination` [headDim][rowStride], scaled;
    /// padding lanes are zero.
    @inline(__always)
    private func loadTransposed(
        _ source: UnsafeRawPointer, rows: UnsafePointer<Int32>, rowCount: Int, paddedRows: Int, headBase: Int,
        scale: Float, into destination: UnsafeMutablePointer<Float>
    ) {
        job.kind.loadTransposed(
            source, rows: rows, rowCount: rowCount, paddedRows: paddedRows, headBase: headBase, width: job.headDim,
            scale: scale, buffer: rowBuffer, into: destination, stride: rowStride, level: job.level)
    }

    /// Writes lane `r` of the transposed accumulator `source`, times `scale`, to row `row` of `destination`.
    @inline(__always)
    private func storeLane(
        _ r: Int, of source: UnsafeMutablePointer<Float>, scale: Float, to destination: UnsafeMutablePointer<Float>,
        row: Int
    ) {
        let d = job.headDim
        let out = destination + row * d
        for c in 0..<d { out[c] = source[c * rowStride + r] * scale }
    }

    /// out[column][lanes of 16-row groups] (=|+=) Σ_depth x · y over `columns` columns.
    @inline(__always)
    private func product(
        rowGroups16: Int, depth: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>, yStride: Int,
        yColumnStride: Int, columns: Int, out: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        sta_cpu_product(
            job.level, rowGroups16, depth, x, rowStride, y, yStride, yColumnStride, columns, out, rowStride,
            accumulate ? 1 : 0, nil)
    }

    // MARK: dK, dV

    /// Computes the dK and dV rows of the key block `item` (lanes = keys). Allocates nothing.
    func runKeyItem(_ item: WorkItem) {
        let d = job.headDim
        let headBase = Int(item.batchHead) * job.sequenceLength
        let keys = job.attendingRows + Int(item.rowStart)
        let keyCount = Int(item.rowCount)
        let rowGroups16 = (keyCount + 15) / 16
        let paddedKeys = rowGroups16 * 16
        let (queries, queryCount) = job.otherRows(
            of: item, start: job.queryTileStart, tiles: job.queryTiles, scratch: list)
        let keyT = ownA, valueT = ownB, dKT = accumulatorA, dVT = accumulatorB

        loadTransposed(
            job.k, rows: keys, rowCount: keyCount, paddedRows: paddedKeys, headBase: headBase,
            scale: job.scoreScale, into: keyT)
        loadTransposed(
            job.v, rows: keys, rowCount: keyCount, paddedRows: paddedKeys, headBase: headBase, scale: 1,
            into: valueT)

        var chunkStart = 0
        while chunkStart < queryCount {
            let n = min(job.chunk, queryCount - chunkStart)
            // Q, dO, L and Δ of this chunk of query rows; rows that attend nothing load as zeros.
            for j in 0..<n {
                let row = headBase + Int(queries[chunkStart + j])
                rowLSE[j] = job.lseLog2[row]
                rowDelta[j] = job.delta[row]
                if rowLSE[j] == .infinity {
                    (chunkA + j * d).update(repeating: 0, count: d)
                    (chunkB + j * d).update(repeating: 0, count: d)
                } else {
                    job.kind.loadRow(from: job.q, offset: row * d, count: d, into: chunkA + j * d, level: job.level)
                    job.kind.loadRow(from: job.outputGradient, offset: row * d, count: d, into: chunkB + j * d, level: job.level)
                }
            }
            // Sᵀ[query][keys] = K Qᵀ and dPᵀ[query][keys] = V dOᵀ.
            product(
                rowGroups16: rowGroups16, depth: d, x: keyT, y: chunkA, yStride: 1, yColumnStride: d, columns: n,
                out: probabilities, accumulate: false)
            product(
                rowGroups16: rowGroups16, depth: d, x: valueT, y: chunkB, yStride: 1, yColumnStride: d, columns: n,
                out: scoreGradients, accumulate: false)
            // P = 2^(S − L) and dS = P ∘ (dP − Δ), one query (one broadcast L and Δ) per column.
            sta_cpu_backward_scores_by_column(
                job.level, probabilities, scoreGradients, rowStride, n, paddedKeys, rowLSE, rowDelta)
            // dVᵀ += dOᵀ P and dKᵀ += Qᵀ dS (depth = the chunk's queries).
            product(
                rowGroups16: rowGroups16, depth: n, x: probabilities, y: chunkB, yStride: d, yColumnStride: 1,
                columns: d, out: dVT, accumulate: chunkStart > 0)
            product(
                rowGroups16: rowGroups16, depth: n, x: scoreGradients, y: chunkA, yStride: d, yColumnStride: 1,
                columns: d, out: dKT, accumulate: chunkStart > 0)
            chunkStart += n
        }

        for r in 0..<keyCount {
            let row = headBase + Int(keys[r])
            if queryCount == 0 {
                (job.dk + row * d).update(repeating: 0, count: d)
                (job.dv + row * d).update(repeating: 0, count: d)
            } else {
                storeLane(r, of: dKT, scale: job.scale, to: job.dk, row: row)
                storeLane(r, of: dVT, scale: 1, to: job.dv, row: row)
            }
        }
    }

    // MARK: dQ

    /// Computes the dQ rows of the query block `item` (lanes = queries), an item of the forward's
    /// schedule. Allocates nothing.
    func runQueryItem(_ item: WorkItem) {
        let d = job.headDim
        let headBase = Int(item.batchHead) * job.sequenceLength
        let rows = job.attendingRows + Int(item.rowStart)
        let rowCount = Int(item.rowCount)
        let rowGroups16 = (rowCount + 15) / 16
        let paddedRows = rowGroups16 * 16
        let (keys, keyCount) = job.otherRows(of: item, start: job.keyTileStart, tiles: job.keyTiles, scratch: list)
        let queryT = ownA, gradientT = ownB, dQT = accumulatorA

        loadTransposed(
            job.q, rows: rows, rowCount: rowCount, paddedRows: paddedRows, headBase: headBase,
            scale: job.scoreScale, into: queryT)
        loadTransposed(
            job.outputGradient, rows: rows, rowCount: rowCount, paddedRows: paddedRows, headBase: headBase,
            scale: 1, into: gradientT)
        // Padding lanes and rows that attend nothing get L = +∞, so their P is 0.
        for r in 0..<paddedRows {
            if r < rowCount {
                let row = headBase + Int(rows[r])
                rowLSE[r] = job.lseLog2[row]
                rowDelta[r] = job.delta[row]
                if rowLSE[r] == .infinity {
                    for c in 0..<d { gradientT[c * rowStride + r] = 0 }
                }
            } else {
                rowLSE[r] = .infinity
                rowDelta[r] = 0
            }
        }

        var chunkStart = 0
        while chunkStart < keyCount {
            let n = min(job.chunk, keyCount - chunkStart)
            job.kind.gatherRowPairs(
                keys + chunkStart, count: n, headBase: headBase, width: d, from: job.k, job.v, into: chunkA, chunkB,
                level: job.level)
            // Sᵀ[key][queries] = (Q Kᵀ)ᵀ and dPᵀ[key][queries] = (dO Vᵀ)ᵀ.
            product(
                rowGroups16: rowGroups16, depth: d, x: queryT, y: chunkA, yStride: 1, yColumnStride: d, columns: n,
                out: probabilities, accumulate: false)
            product(
                rowGroups16: rowGroups16, depth: d, x: gradientT, y: chunkB, yStride: 1, yColumnStride: d,
                columns: n, out: scoreGradients, accumulate: false)
            // dS = 2^(S − L) ∘ (dP − Δ), L and Δ per lane.
            sta_cpu_backward_scores_by_lane(
                job.level, probabilities, scoreGradients, rowStride, n, paddedRows, rowLSE, rowDelta)
            // dQᵀ += Kᵀ dSᵀ (depth = the chunk's keys).
            product(
                rowGroups16: rowGroups16, depth: n, x: scoreGradients, y: chunkA, yStride: d, yColumnStride: 1,
                columns: d, out: dQT, accumulate: chunkStart > 0)
            chunkStart += n
        }

        for r in 0..<rowCount {
            let row = headBase + Int(rows[r])
            if keyCount == 0 || rowLSE[r] == .infinity {
                (job.dq + row * d).update(repeating: 0, count: d)
            } else {
                storeLane(r, of: dQT, scale: job.scale, to: job.dq, row: row)
            }
        }
    }
}
