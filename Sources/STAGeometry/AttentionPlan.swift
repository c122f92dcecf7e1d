/// Which key tiles every query tile of every head attends: the compact form kernels consume.
///
/// Heads share storage by window: `windowIndexByHead[h]` picks one of the distinct `windows`, and the key
/// tiles of query tile `q` under window `w` are
/// `keyTiles[keyTileStart[w · tileCount + q] ..< keyTileStart[w · tileCount + q + 1]]`, ascending.
/// Text is uniform and needs no list: a video query also attends the `text.valid` real text keys; a text
/// query attends every real video key and every valid text key.
///
/// Cost to build: O(distinct windows · tileCount · keys per query tile), about a millisecond for the
/// largest suites.
public struct AttentionPlan: Hashable, Sendable {
    public let layout: STALayout
    /// Distinct windows, resolved (sizes clamped to the tile grid).
    public let windows: [Window]
    /// For each head, the index of its window in `windows`.
    public let windowIndexByHead: [Int32]
    /// CSR row starts, `windows.count · tileCount + 1` entries.
    public let keyTileStart: [Int32]
    /// Key tile indices, concatenated over (window, query tile).
    public let keyTiles: [Int32]

    /// A plan where every head uses `window`.
    public init(layout: STALayout, window: Window, heads: Int) throws(GeometryError) {
        guard heads >= 1 else { throw .noHeads }
        guard heads <= STALimits.maximumHeads else {
            throw .exceedsLimit(what: "head count", value: String(heads), limit: STALimits.maximumHeads)
        }
        try self.init(layout: layout, headWindows: Array(repeating: window, count: heads))
    }

    /// A plan with one window per head.
    ///
    /// Throws when a window does not fit the layout, there are no heads or more than
    /// `STALimits.maximumHeads`, or the key-tile lists would hold more than
    /// `STALimits.maximumKeyTileEntries` entries (checked before anything is allocated).
    public init(layout: STALayout, headWindows: [Window]) throws(GeometryError) {
        guard !headWindows.isEmpty else { throw .noHeads }
        guard headWindows.count <= STALimits.maximumHeads else {
            throw .exceedsLimit(what: "head count", value: String(headWindows.count), limit: STALimits.maximumHeads)
        }
        var windows = [Window]()
        var windowIndexByHead = [Int32]()
        for window in headWindows {
            let resolved = try layout.resolve(window)
            if let index = windows.firstIndex(of: resolved) {
                windowIndexByHead.append(Int32(index))
            } else {
                windowIndexByHead.append(Int32(windows.count))
                windows.append(resolved)
            }
        }
        // Resolved windows are clamped to the grid, so each product is at most tileCount ≤ 2²⁷ and the
        // checked sum below bounds both tables before they are allocated.
        var entryCount = 0
        for window in windows {
            let entries = try STALimits.product(
                [window.tileCount, layout.tileCount], "(query tile, key tile) pairs of the plan",
                limit: STALimits.maximumKeyTileEntries)
            entryCount = try STALimits.sum(
                entryCount, entries, "(query tile, key tile) pairs of the plan", limit: STALimits.maximumKeyTileEntries)
        }
        var keyTileStart: [Int32] = [0]
        var keyTiles = [Int32]()
        keyTileStart.reserveCapacity(windows.count * layout.tileCount + 1)
        keyTiles.reserveCapacity(entryCount)
        let rank = layout.rank
        // Work in rank 3 with leading unit axes.
        let grid = Array(repeating: 1, count: 3 - rank) + layout.tileGrid
        for window in windows {
            for queryTile in 0..<layout.tileCount {
                let q = layout.tileCoordinates(ofTile: queryTile)
                var ranges = [Range<Int>](repeating: 0..<1, count: 3)
                for axis in 0..<rank {
                    ranges[3 - rank + axis] = layout.keyTileRange(
                        axis: axis, queryTile: q[axis], windowTiles: window.tiles[axis])
                }
                for a in ranges[0] {
                    for b in ranges[1] {
                        for c in ranges[2] { keyTiles.append(Int32((a * grid[1] + b) * grid[2] + c)) }
                    }
                }
                keyTileStart.append(Int32(keyTiles.count))
            }
        }
        self.layout = layout
        self.windows = windows
        self.windowIndexByHead = windowIndexByHead
        self.keyTileStart = keyTileStart
        self.keyTiles = keyTiles
    }

    public var heads: Int { windowIndexByHead.count }

    /// The key tiles of `queryTile` for `head`, ascending.
    public func keyTiles(head: Int, queryTile: Int) -> ArraySlice<Int32> {
        let row = Int(windowIndexByHead[head]) * layout.tileCount + queryTile
        return keyTiles[Int(keyTileStart[row])..<Int(keyTileStart[row + 1])]
    }

    /// The window of `head`, resolved.
    public func window(head: Int) -> Window { windows[Int(windowIndexByHead[head])] }

    /// Whether query `query` may attend key `key` (sequence indices, tile order then text) for `head`.
    /// Holes and padding text keys are never attended; hole and padding-text queries attend nothing.
    /// Cost: O(keys per query tile).
    public func allows(head: Int, query: Int, key: Int) -> Bool {
        let video = layout.paddedVideoTokenCount
        let textValidEnd = video + layout.text.valid
        func isReal(_ index: Int) -> Bool {
            index < video ? layout.canvasPosition(ofSequenceIndex: index) != nil : index < textValidEnd
        }
        guard isReal(query), isReal(key) else { return false }
        if query >= video || key >= video { return true }
        return keyTiles(head: head, queryTile: query / layout.tileVolume).contains(Int32(key / layout.tileVolume))
    }

    // MARK: Counts

    /// (query, key) pairs of real tokens attended by one head, text included. Cost: O(tileCount · keys).
    public func attendedPairs(head: Int) -> Int {
        attendedPairCounts(window: Int(windowIndexByHead[head])).total
    }

    /// Effective FLOPs of spec §3: 4 · headDim · batch · Σ over heads of attended real pairs.
    /// Cost: O(distinct windows · tileCount · keys), counted once per distinct window.
    public func effectiveFLOPs(batch: Int, headDim: Int) -> Double {
        let perWindow = (0..<windows.count).map { attendedPairCounts(window: $0).total }
        var pairs = 0.0
        for head in 0..<heads { pairs += Double(perWindow[Int(windowIndexByHead[head])]) }
        return 4 * Double(headDim) * Double(batch) * pairs
    }

    /// FLOPs of dense attention over the real tokens (video and valid text), all heads.
    public func denseFLOPs(batch: Int, headDim: Int) -> Double {
        let real = Double(layout.videoTokenCount + layout.text.valid)
        return 4 * Double(headDim) * Double(batch) * Double(heads) * real * real
    }

    /// Fraction of video–video pairs of real tokens that `head` skips: 1 − attended / videoTokenCount².
    public func videoSparsity(head: Int) -> Double {
        let n = Double(layout.videoTokenCount)
        return 1 - Double(attendedPairCounts(window: Int(windowIndexByHead[head])).video) / (n * n)
    }

    /// Mean of `videoSparsity` over heads.
    /// Cost: O(distinct windows · tileCount · keys).
    public var videoSparsity: Double {
        let n = Double(layout.videoTokenCount)
        let perWindow = (0..<windows.count).map { 1 - Double(attendedPairCounts(window: $0).video) / (n * n) }
        return (0..<heads).reduce(0.0) { $0 + perWindow[Int(windowIndexByHead[$1])] } / Double(heads)
    }

    private func attendedPairCounts(window: Int) -> (video: Int, total: Int) {
        let realInTile = (0..<layout.tileCount).map { layout.realTokenCount(inTile: $0) }
        var video = 0
        for queryTile in 0..<layout.tileCount {
            let row = window * layout.tileCount + queryTile
            var keys = 0
            for k in keyTileStart[row]..<keyTileStart[row + 1] { keys += realInTile[Int(keyTiles[Int(k)])] }
            video += realInTile[queryTile] * keys
        }
        let text = layout.text.valid
        let n = layout.videoTokenCount
        return (video, video + 2 * n * text + text * text)
    }
}
