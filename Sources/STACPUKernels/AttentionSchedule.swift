import STAGeometry

/// One unit of parallel work: up to `AttentionSchedule.queryBlockRows` query rows of one (batch, head)
/// that share one key set.
struct WorkItem: Sendable {
    /// batch · heads + head.
    var batchHead: Int32
    /// Row of the plan's CSR (window · tileCount + query tile) whose key tiles (plus the valid text) are
    /// the keys of every row of the item, or -1 for every real key (the key set of text queries).
    var keySet: Int32
    /// First row in `AttentionSchedule.attendingRows`.
    var rowStart: Int32
    var rowCount: Int32
    /// Estimated cost in multiply-adds (padded rows × keys × 2 products), for ordering.
    var cost: Int
}

/// Everything the workers of one call share, built once per call in O(B · H · S / 128 + S + plan size).
///
/// Rows are split into work items whose rows all have the same keys: one query tile, or a run of
/// consecutive query tiles with identical key tiles. Hole rows and padding text rows attend nothing; they are listed in `silentRows` and written as
/// zeros with log-sum-exp −∞ before the parallel part runs.
struct AttentionSchedule: Sendable {
    /// Query rows per work item (a multiple of 16, the rows of one micro-kernel). Each chunk of keys and
    /// values is loaded once per item, so more rows amortise it better; 128 rows keep Qᵀ and Oᵀ in L2.
    static let queryBlockRows = 128

    /// Sequence indices of every row that attends something: the real video tokens in tile order, then
    /// the valid text tokens. Doubles as the key list of text queries.
    let attendingRows: [Int32]
    /// Real video tokens of tile t are `attendingRows[tileRealStart[t] ..< tileRealStart[t + 1]]`.
    let tileRealStart: [Int32]
    /// Sequence indices of hole rows and padding text rows.
    let silentRows: [Int32]
    /// Key count of each plan CSR row, text included.
    let keyCountByKeySet: [Int]
    /// Work items, most expensive first (so the dynamic queue ends with small items).
    let items: [WorkItem]

    init(plan: AttentionPlan, batch: Int) {
        let layout = plan.layout
        let tileCount = layout.tileCount
        let tileVolume = layout.tileVolume
        let video = layout.paddedVideoTokenCount
        let textValid = layout.text.valid
        let rasterIndex = layout.rasterIndexBySequenceIndex()

        var attendingRows = [Int32]()
        attendingRows.reserveCapacity(layout.videoTokenCount + textValid)
        var silentRows = [Int32]()
        var tileRealStart = [Int32](repeating: 0, count: tileCount + 1)
        for tile in 0..<tileCount {
            for index in (tile * tileVolume)..<((tile + 1) * tileVolume) {
                if rasterIndex[index] >= 0 {
                    attendingRows.append(Int32(index))
                } else {
                    silentRows.append(Int32(index))
                }
            }
            tileRealStart[tile + 1] = Int32(attendingRows.count)
        }
        for index in video..<(video + textValid) { attendingRows.append(Int32(index)) }
        for index in (video + textValid)..<layout.sequenceLength { silentRows.append(Int32(index)) }

        let realCount = attendingRows.count
        var keyCountByKeySet = [Int](repeating: textValid, count: plan.windows.count * tileCount)
        for row in 0..<keyCountByKeySet.count {
            for position in Int(plan.keyTileStart[row])..<Int(plan.keyTileStart[row + 1]) {
                let tile = Int(plan.keyTiles[position])
                keyCountByKeySet[row] += Int(tileRealStart[tile + 1] - tileRealStart[tile])
            }
        }

        let blockRows = Self.queryBlockRows
        func paddedRows(_ rows: Int) -> Int { (rows + 15) / 16 * 16 }
        var items = [WorkItem]()
        // Consecutive query tiles with the same key tiles (the windows clamped at a border) share items,
        // so that small tiles still fill 128-row blocks.
        func sameKeys(_ a: Int, _ b: Int) -> Bool {
            let aStart = Int(plan.keyTileStart[a]), bStart = Int(plan.keyTileStart[b])
            let count = Int(plan.keyTileStart[a + 1]) - aStart
            guard count == Int(plan.keyTileStart[b + 1]) - bStart else { return false }
            for i in 0..<count where plan.keyTiles[aStart + i] != plan.keyTiles[bStart + i] { return false }
            return true
        }
        var tileRunsByWindow = [[Range<Int>]]()
        for window in 0..<plan.windows.count {
            var runs = [Range<Int>]()
            var first = 0
            while first < tileCount {
                var end = first + 1
                while end < tileCount, sameKeys(window * tileCount + first, window * tileCount + end) { end += 1 }
                runs.append(first..<end)
                first = end
            }
            tileRunsByWindow.append(runs)
        }

        for batchHead in 0..<(batch * plan.heads) {
            let window = Int(plan.windowIndexByHead[batchHead % plan.heads])
            for run in tileRunsByWindow[window] {
                let keySet = window * tileCount + run.lowerBound
                let keys = keyCountByKeySet[keySet]
                var start = Int(tileRealStart[run.lowerBound])
                let end = Int(tileRealStart[run.upperBound])
                while start < end {
                    let rows = min(blockRows, end - start)
                    items.append(
                        WorkItem(
                            batchHead: Int32(batchHead), keySet: Int32(keySet), rowStart: Int32(start),
                            rowCount: Int32(rows), cost: 2 * paddedRows(rows) * (keys + 16)))
                    start += rows
                }
            }
            var start = Int(tileRealStart[tileCount])
            while start < realCount {
                let rows = min(blockRows, realCount - start)
                items.append(
                    WorkItem(
                        batchHead: Int32(batchHead), keySet: -1, rowStart: Int32(start), rowCount: Int32(rows),
                        cost: 2 * paddedRows(rows) * (realCount + 16)))
                start += rows
            }
        }
        // Most expensive first; equal costs keep their (batch, head, tile) order, so that the threads work
        // on neighbouring query blocks of one head at a time and share its keys and values in cache.
        items = items.enumerated().sorted { ($0.element.cost, $1.offset) > ($1.element.cost, $0.offset) }
            .map(\.element)

        self.attendingRows = attendingRows
        self.tileRealStart = tileRealStart
        self.silentRows = silentRows
        self.keyCountByKeySet = keyCountByKeySet
        self.items = items
    }

    /// The longest key list of any item.
    var maximumKeyCount: Int { max(attendingRows.count, keyCountByKeySet.max() ?? 0) }
}
