import STACPUKernelsC

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only description of one attention call that every worker thread shares: raw pointers into
/// the caller's buffers and the schedule's arrays, valid for the duration of the call.
struct AttentionJob: @unchecked Sendable {
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
        let textValid = Int(job.textValid[Int(item.batchHead) / job.heads])
        let keys: UnsafePointer<Int32>
        let keyCount: Int
        if item.keySet < 0 {
            keys = job.attendingRows
            keyCount = job.realVideoCount + textValid
        } else {
            var count = 0
            let set = Int(item.keySet)
            for position in Int(job.keyTileStart[set])..<Int(job.keyTileStart[set + 1]) {
                let tile = Int(job.keyTiles[position])
                let first = Int(job.tileRealStart[tile])
                let n = Int(job.tileRealStart[tile + 1]) - first
                (keyIndex + count).update(from: job.attendingRows + first, count: n)
                count += n
            }
            for t in 0..<textValid { keyIndex[count + t] = Int32(job.textStart + t) }
            keys = UnsafePointer(keyIndex)
            keyCount = count + textValid
        }

        // Qᵀ, scaled; padding rows are zero (their scores are 0, harmless, and never written out).
        for r in 0..<paddedRows {
            if r < rowCount {
                job.kind.loadRow(
                    from: job.q, offset: (headBase + Int(rows[r])) * d, count: d, scale: job.scoreScale,
                    into: rowBuffer, level: job.level)
                for c in 0..<d { queryT[c * rowStride + r] = rowBuffer[c] }
            } else {
                for c in 0..<d { queryT[c * rowStride + r] = 0 }
            }
        }
        (runningMax).update(repeating: -.infinity, count: paddedRows)
        (runningSum).update(repeating: 0, count: paddedRows)

        var chunkStart = 0
        while chunkStart < keyCount {
            let n = min(job.keyChunk, keyCount - chunkStart)
            let chunkKeys = keys + chunkStart
            gatherKeysAndValues(keys: chunkKeys, count: n, headBase: headBase)

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

    /// Gathers the K and V rows of `keys` into the worker's chunks as `Float` (row stride headDim):
    /// one copy per run of consecutive fp32 keys, one vectorised row conversion per 16-bit key. Copying
    /// even contiguous fp32 keys pays: the sequential copy streams from L3 at full speed, while the
    /// micro-kernel's six interleaved row streams would each wait on cache misses.
    @inline(__always)
    private func gatherKeysAndValues(keys: UnsafePointer<Int32>, count n: Int, headBase: Int) {
        let d = job.headDim
        if job.kind == .float32 {
            let kSource = job.k.assumingMemoryBound(to: Float.self)
            let vSource = job.v.assumingMemoryBound(to: Float.self)
            var j = 0
            while j < n {
                var run = 1
                while j + run < n, keys[j + run] == keys[j] + Int32(run) { run += 1 }
                let offset = (headBase + Int(keys[j])) * d
                (keyChunk + j * d).update(from: kSource + offset, count: run * d)
                (valueChunk + j * d).update(from: vSource + offset, count: run * d)
                j += run
            }
            return
        }
        for j in 0..<n {
            let offset = (headBase + Int(keys[j])) * d
            job.kind.loadRow(from: job.k, offset: offset, count: d, into: keyChunk + j * d, level: job.level)
            job.kind.loadRow(from: job.v, offset: offset, count: d, into: valueChunk + j * d, level: job.level)
        }
    }
}
