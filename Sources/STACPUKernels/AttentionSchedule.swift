import STAGeometry

/// One unit of parallel work: up to `AttentionSchedule.queryBlockRows` query rows of one (batch, head)
/// that share one key set.
struct WorkItem: Sendable {
    /// batch · heads + head.
    var batchHead: Int32
    /// Row of the plan's CSR (window · tileCount + query tile) whose key tiles (plus the batch row's valid
    /// text) are the keys of every row of the item, or -1 for every real key of the batch row (the key set
    /// of text queries).
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
/// consecutive query tiles with identical key tiles. Hole rows and the padding text rows of each batch
/// row attend nothing; `silentRows(batch:)` lists them, and they are written as zeros with log-sum-exp
/// −∞ before the parallel part runs.
///
/// Text lengths are per batch row (`textValid`): row b's valid text tokens are the first `textValid[b]`
/// text positions; `attendingRows` lists the text rows up to the longest of them, and each batch row
/// uses the prefix `attendingRows[0 ..< attendingCount(batch: b)]`.
struct AttentionSchedule: Sendable {
    /// Query rows per work item (a multiple of 16, the rows of one micro-kernel). Each chunk of keys and
    /// values is loaded once per item, so more rows amortise it better; 128 rows keep Qᵀ and Oᵀ in L2.
    static let queryBlockRows = 128

    /// Sequence indices of the real video tokens in tile order, then the text tokens up to the longest
    /// valid length of any batch row. The prefix `0 ..< attendingCount(batch: b)` lists every row of batch
    /// row b that attends something, and doubles as the key list of its text queries.
    let attendingRows: [Int32]
    /// Real video tokens of tile t are `attendingRows[tileRealStart[t] ..< tileRealStart[t + 1]]`.
    let tileRealStart: [Int32]
    /// Sequence indices of hole rows (video positions outside the canvas).
    let holeRows: [Int32]
    /// Valid text length of each batch row.
    let textValid: [Int32]
    /// First text position (the padded video token count) and the text token count.
    let textStart: Int
    let textCount: Int
    /// Real video key count of each plan CSR row (text excluded).
    let videoKeyCountByKeySet: [Int]
    /// Work items, most expensive first (so the dynamic queue ends with small items).
    let items: [WorkItem]

    /// `textValid`: one valid text length per batch row, each in 0...text.count (checked by the caller);
    /// nil means `plan.layout.text.valid` for every row.
    init(plan: AttentionPlan, batch: Int, textValid: [Int]? = nil) {
        let layout = plan.layout
        let tileCount = layout.tileCount
        let tileVolume = layout.tileVolume
        let video = layout.paddedVideoTokenCount
        let textValid = textValid ?? Array(repeating: layout.text.valid, count: batch)
        let longestText = textValid.max() ?? 0
        let rasterIndex = layout.rasterIndexBySequenceIndex()

        var attendingRows = [Int32]()
        attendingRows.reserveCapacity(layout.videoTokenCount + longestText)
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
        for index in video..<(video + longestText) { attendingRows.append(Int32(index)) }

        let (items, keyCountByKeySet) = Self.workItems(
            plan: plan, batch: batch, start: plan.keyTileStart, tiles: plan.keyTiles, tileRealStart: tileRealStart,
            textValid: { textValid[$0] }, weight: 2)

        self.attendingRows = attendingRows
        self.tileRealStart = tileRealStart
        self.holeRows = silentRows
        self.textValid = textValid.map { Int32($0) }
        self.textStart = video
        self.textCount = layout.text.count
        self.videoKeyCountByKeySet = keyCountByKeySet
        self.items = items
    }

    /// Real video rows (the rows of every batch row that attend something, text aside).
    var realVideoCount: Int { Int(tileRealStart[tileRealStart.count - 1]) }

    /// Rows of batch row `b` that attend something: the real video rows and its valid text rows.
    func attendingCount(batch b: Int) -> Int { realVideoCount + Int(textValid[b]) }

    /// Sequence indices of the rows of batch row `b` that attend nothing: holes and padding text.
    func silentRows(batch b: Int) -> [Int32] {
        holeRows + (textStart + Int(textValid[b]) ..< textStart + textCount).map { Int32($0) }
    }

    /// The longest key list of any item.
    var maximumKeyCount: Int {
        max(attendingRows.count, (videoKeyCountByKeySet.max() ?? 0) + attendingRows.count - realVideoCount)
    }
}
