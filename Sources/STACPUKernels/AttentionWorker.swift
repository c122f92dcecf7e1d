import STACPUKernelsC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only description of one attention call that every worker thread shares: raw pointers into
/// the caller's buffers and the schedule's arrays, valid for the duration of the call.
struct AttentionJob: AttendingRowLists, @unchecked Sendable {
    var kind: StorageKind
    /// Which implementation of the C micro-kernels runs (`sta_cpu_best_level()` unless a test asks).
    var level: Int32
    var q: UnsafeRawPointer
    var k: UnsafeRawPointer
    var v: UnsafeRawPointer
    var output: UnsafeMutableRawPointer
    var lse: UnsafeMutablePointer<Float>
    var sequenceLength: Int
    var headDim: Int
    /// scale · log2 e: scores come out in base-2 units for the kernels' 2^x.
    var scoreScale: Float
    /// The softmax scale itself, for the float64 recomputation of rows the fp32 pass cannot represent.
    var scale: Double
    /// Keys per chunk of the online softmax.
    var keyChunk: Int
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
    var keyTileStart: UnsafePointer<Int32>
    var keyTiles: UnsafePointer<Int32>
    var items: UnsafePointer<WorkItem>
    var maximumKeyCount: Int
}

/// Per-thread scratch and the flash-attention loop over one work item.
///
/// Layouts (all `Float`, `rowStride` = `AttentionSchedule.queryBlockRows`): Qᵀ [headDim][rows] pre-scaled by
/// scale · log2 e; Sᵀ/Pᵀ [keyChunk][rows]; Oᵀ [headDim][rows] unnormalised; a K and a V chunk
/// [keyChunk][headDim], gathered and converted. Lanes of every vector are query rows, so
/// the softmax needs no horizontal reductions and V is read in its natural layout.
/// Scratch per worker: 4 · (2 · rows · headDim + 2 · keyChunk · headDim + rows · keyChunk + keys) bytes,
/// about 320 KiB for headDim 128 and 128-key chunks (it lives in L2).
struct AttentionWorker {
    let job: AttentionJob
    let rowStride = AttentionSchedule.queryBlockRows
    let queryT: UnsafeMutablePointer<Float>
    let outputT: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let keyChunk: UnsafeMutablePointer<Float>
    let valueChunk: UnsafeMutablePointer<Float>
    let rowBuffer: UnsafeMutablePointer<Float>
    let runningMax: UnsafeMutablePointer<Float>
    let runningSum: UnsafeMutablePointer<Float>
    let alpha: UnsafeMutablePointer<Float>
    let keyIndex: UnsafeMutablePointer<Int32>

    init(job: AttentionJob) {
        self.job = job
        let d = job.headDim
        queryT = .allocate(capacity: rowStride * d)
        outputT = .allocate(capacity: rowStride * d)
        scores = .allocate(capacity: rowStride * job.keyChunk)
        keyChunk = .allocate(capacity: job.keyChunk * d)
        valueChunk = .allocate(capacity: job.keyChunk * d)
        rowBuffer = .allocate(capacity: d + 8)
        runningMax = .allocate(capacity: rowStride)
        runningSum = .allocate(capacity: rowStride)
        alpha = .allocate(capacity: rowStride)
        keyIndex = .allocate(capacity: max(1, job.maximumKeyCount))
    }

    func deallocate() {
        for pointer in [queryT, outputT, scores, keyChunk, valueChunk, rowBuffer, runningMax, runningSum, alpha] {
            pointer.deallocate()
        }
        keyIndex.deallocate()
    }

    /// Computes the output rows and log-sum-exp of `item`. Allocates nothing.
    func run(_ item: WorkItem) {
        let d = job.headDim
        let headBase = Int(item.batchHead) * job.sequenceLength
        let rows = job.attendingRows + Int(item.rowStart)
        let rowCount = Int(item.rowCount)
        let rowGroups16 = (rowCount + 15) / 16
        let paddedRows = rowGroups16 * 16

        // Key list: the batch row's valid text keys follow the video keys.
        let (keys, keyCount) = job.otherRows(of: item, start: job.keyTileStart, tiles: job.keyTiles, scratch: keyIndex)

        // Qᵀ, scaled; padding rows are zero (their scores are 0, harmless, and never written out).
        job.kind.loadTransposed(
            job.q, rows: rows, rowCount: rowCount, paddedRows: paddedRows, headBase: headBase, width: d,
            scale: job.scoreScale, buffer: rowBuffer, into: queryT, stride: rowStride, level: job.level)
        (runningMax).update(repeating: -.infinity, count: paddedRows)
        (runningSum).update(repeating: 0, count: paddedRows)

        var chunkStart = 0
        while chunkStart < keyCount {
            let n = min(job.keyChunk, keyCount - chunkStart)
            let chunkKeys = keys + chunkStart
            job.kind.gatherRowPairs(
                chunkKeys, count: n, headBase: headBase, width: d, from: job.k, job.v, into: keyChunk, valueChunk,
                level: job.level)

            // Sᵀ = (Q Kᵀ)ᵀ for this chunk.
            sta_cpu_product(
                job.level, rowGroups16, d, queryT, rowStride, keyChunk, 1, d, n, scores, rowStride, 0, nil)
            sta_cpu_online_softmax_step(job.level, scores, rowStride, n, paddedRows / 8, runningMax, runningSum, alpha)
            // Oᵀ = alpha · Oᵀ + (P V)ᵀ.
            sta_cpu_product(
                job.level, rowGroups16, n, scores, rowStride, valueChunk, d, 1, d, outputT, rowStride,
                chunkStart == 0 ? 0 : 2, alpha)
            chunkStart += n
        }

        // Normalise, write rows back in storage order, and the log-sum-exp (natural log). A row whose
        // fp32 result is not finite (scores past the fp32 range, or NaN and infinities in its inputs) is
        // recomputed in Double by `writeExactRow`, which gives the right numbers for large finite inputs
        // and a NaN row otherwise.
        for r in 0..<rowCount {
            let row = headBase + Int(rows[r])
            if keyCount == 0 {
                job.kind.storeZeros(count: d, to: job.output, offset: row * d)
                job.lse[row] = -.infinity
                continue
            }
            let sum = runningSum[r], maximum = runningMax[r]
            var finite = sum.isFinite && sum > 0 && maximum.isFinite
            if finite {
                let inverse = 1 / sum
                for c in 0..<d {
                    let value = outputT[c * rowStride + r] * inverse
                    rowBuffer[c] = value
                    finite = finite && value.isFinite
                }
            }
            guard finite else {
                writeExactRow(row, keys: keys, keyCount: keyCount, headBase: headBase)
                continue
            }
            job.kind.storeRow(rowBuffer, count: d, to: job.output, offset: row * d, level: job.level)
            job.lse[row] = Float((Double(maximum) + log2(Double(sum))) * 0.693_147_180_559_945_3)
        }
    }
}
