/// Row traffic that the forward and backward workers share: rows gathered by index and converted to
/// `Float`, in the natural layout or transposed.
extension StorageKind {
    /// Gathers rows `rows[0 ..< n]` (sequence positions after `headBase`, `width` elements each) of `first`
    /// and `second` (K and V) into `intoFirst` and `intoSecond` as `Float`, row stride `width`: one copy per
    /// run of consecutive fp32 rows, one vectorised row conversion per 16-bit row. Copying even contiguous
    /// fp32 rows pays: the sequential copy streams from L3 at full speed, while the micro-kernel's six
    /// interleaved row streams would each wait on cache misses.
    @inline(__always)
    func gatherRowPairs(
        _ rows: UnsafePointer<Int32>, count n: Int, headBase: Int, width d: Int, from first: UnsafeRawPointer,
        _ second: UnsafeRawPointer, into intoFirst: UnsafeMutablePointer<Float>,
        _ intoSecond: UnsafeMutablePointer<Float>, level: Int32
    ) {
        if self == .float32 {
            let firstSource = first.assumingMemoryBound(to: Float.self)
            let secondSource = second.assumingMemoryBound(to: Float.self)
            var j = 0
            while j < n {
                var run = 1
                while j + run < n, rows[j + run] == rows[j] + Int32(run) { run += 1 }
                let offset = (headBase + Int(rows[j])) * d
                (intoFirst + j * d).update(from: firstSource + offset, count: run * d)
                (intoSecond + j * d).update(from: secondSource + offset, count: run * d)
                j += run
            }
            return
        }
        for j in 0..<n {
            let offset = (headBase + Int(rows[j])) * d
            loadRow(from: first, offset: offset, count: d, into: intoFirst + j * d, level: level)
            loadRow(from: second, offset: offset, count: d, into: intoSecond + j * d, level: level)
        }
    }

    /// Loads rows `rows[0 ..< rowCount]` of `source` (after `headBase`, `width` elements each), times
    /// `scale`, transposed into `destination` [width][stride]; lanes rowCount ..< paddedRows are zero.
    /// `buffer` holds one converted row (width floats).
    @inline(__always)
    func loadTransposed(
        _ source: UnsafeRawPointer, rows: UnsafePointer<Int32>, rowCount: Int, paddedRows: Int, headBase: Int,
        width d: Int, scale: Float, buffer: UnsafeMutablePointer<Float>, into destination: UnsafeMutablePointer<Float>,
        stride: Int, level: Int32
    ) {
        for r in 0..<paddedRows {
            if r < rowCount {
                loadRow(
                    from: source, offset: (headBase + Int(rows[r])) * d, count: d, scale: scale, into: buffer,
                    level: level)
                for c in 0..<d { destination[c * stride + r] = buffer[c] }
            } else {
                for c in 0..<d { destination[c * stride + r] = 0 }
            }
        }
    }
}

/// What a worker reads to list the rows on the other side of a work item (`AttentionJob`, `BackwardJob`).
protocol AttendingRowLists {
    /// Every row that attends something, video rows in tile order, then the text rows.
    var attendingRows: UnsafePointer<Int32> { get }
    /// Real video rows at the head of `attendingRows`.
    var realVideoCount: Int { get }
    /// Where each tile's real rows start in `attendingRows` (tileCount + 1 entries).
    var tileRealStart: UnsafePointer<Int32> { get }
    /// The first text position.
    var textStart: Int { get }
    /// Valid text length per batch row.
    var textValid: UnsafePointer<Int32> { get }
    /// Query heads (batch row of a work item = batchHead / heads).
    var heads: Int { get }
}

extension AttendingRowLists {
    /// The rows on the other side of `item`: the real rows of the tiles of CSR row `item.keySet` of
    /// (`start`, `tiles`), then the valid text rows of the item's batch row, copied into `scratch`; every
    /// attending row of that batch row when the set is negative (no copy).
    @inline(__always)
    func otherRows(
        of item: WorkItem, start: UnsafePointer<Int32>, tiles: UnsafePointer<Int32>,
        scratch: UnsafeMutablePointer<Int32>
    ) -> (rows: UnsafePointer<Int32>, count: Int) {
        let textValid = Int(self.textValid[Int(item.batchHead) / heads])
        let set = Int(item.keySet)
        if set < 0 { return (attendingRows, realVideoCount + textValid) }
        var count = 0
        for position in Int(start[set])..<Int(start[set + 1]) {
            let tile = Int(tiles[position])
            let first = Int(tileRealStart[tile])
            let n = Int(tileRealStart[tile + 1]) - first
            (scratch + count).update(from: attendingRows + first, count: n)
            count += n
        }
        for t in 0..<textValid { scratch[count + t] = Int32(textStart + t) }
        return (UnsafePointer(scratch), count + textValid)
    }
}
