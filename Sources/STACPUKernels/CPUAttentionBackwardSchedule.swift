import STAGeometry

/// The key side of the backward pass: which query rows attend each key tile, and the work items that
/// own blocks of key rows (their dK and dV rows).
///
/// A video key tile `t` is attended, under window `w`, by the real rows of every query tile whose key
/// tiles contain `t` (the inverse of the plan's CSR, `queryTiles[queryTileStart[w · tileCount + t] ..<
/// queryTileStart[w · tileCount + t + 1]]`, ascending) and by the valid text rows of its batch row; a
/// valid text key is attended by every real row of its batch row. Items reuse `WorkItem`: `keySet` names the *query* set (the inverse CSR
/// row, or -1 for every attending row) and `rowStart`, `rowCount` a block of key rows in
/// `AttentionSchedule.attendingRows`.
///
/// Cost to build: O(plan size + B · H · S / 128).
struct BackwardKeySchedule: Sendable {
    /// Inverse CSR row starts, `windows.count · tileCount + 1` entries.
    let queryTileStart: [Int32]
    /// Query tile indices, concatenated over (window, key tile).
    let queryTiles: [Int32]
    /// Real video query rows of each inverse CSR row (text excluded).
    let videoQueryCountByQuerySet: [Int]
    /// Work items, most expensive first.
    let items: [WorkItem]

    init(plan: AttentionPlan, batch: Int, forward: AttentionSchedule) {
        let layout = plan.layout
        let tileCount = layout.tileCount
        let tileRealStart = forward.tileRealStart
        let setCount = plan.windows.count * tileCount

        let (start, queryTiles) = plan.inverseKeyTileLists()
        var queryCountByQuerySet = [Int](repeating: 0, count: setCount)
        for set in 0..<setCount {
            for position in Int(start[set])..<Int(start[set + 1]) {
                let tile = Int(queryTiles[position])
                queryCountByQuerySet[set] += Int(tileRealStart[tile + 1] - tileRealStart[tile])
            }
        }

        // Consecutive key tiles attended by the same query tiles share items (as in the forward).
        func sameQueries(_ a: Int, _ b: Int) -> Bool {
            let aStart = Int(start[a]), bStart = Int(start[b])
            let count = Int(start[a + 1]) - aStart
            guard count == Int(start[b + 1]) - bStart else { return false }
            for i in 0..<count where queryTiles[aStart + i] != queryTiles[bStart + i] { return false }
            return true
        }
        var tileRunsByWindow = [[Range<Int>]]()
        for window in 0..<plan.windows.count {
            var runs = [Range<Int>]()
            var first = 0
            while first < tileCount {
                var end = first + 1
                while end < tileCount, sameQueries(window * tileCount + first, window * tileCount + end) { end += 1 }
                runs.append(first..<end)
                first = end
            }
            tileRunsByWindow.append(runs)
        }

        let blockRows = AttentionSchedule.queryBlockRows
        func paddedRows(_ rows: Int) -> Int { (rows + 15) / 16 * 16 }
        var items = [WorkItem]()
        for batchHead in 0..<(batch * plan.heads) {
            let window = Int(plan.windowIndexByHead[batchHead % plan.heads])
            let text = Int(forward.textValid[batchHead / plan.heads])
            let realCount = forward.realVideoCount + text
            for run in tileRunsByWindow[window] {
                let set = window * tileCount + run.lowerBound
                let queries = queryCountByQuerySet[set] + text
                var first = Int(tileRealStart[run.lowerBound])
                let end = Int(tileRealStart[run.upperBound])
                while first < end {
                    let rows = min(blockRows, end - first)
                    items.append(
                        WorkItem(
                            batchHead: Int32(batchHead), keySet: Int32(set), rowStart: Int32(first),
                            rowCount: Int32(rows), cost: 4 * paddedRows(rows) * (queries + 16)))
                    first += rows
                }
            }
            var first = Int(tileRealStart[tileCount])
            while first < realCount {
                let rows = min(blockRows, realCount - first)
                items.append(
                    WorkItem(
                        batchHead: Int32(batchHead), keySet: -1, rowStart: Int32(first), rowCount: Int32(rows),
                        cost: 4 * paddedRows(rows) * (realCount + 16)))
                first += rows
            }
        }
        items = items.enumerated().sorted { ($0.element.cost, $1.offset) > ($1.element.cost, $0.offset) }
            .map(\.element)

        self.queryTileStart = start
        self.queryTiles = queryTiles
        self.videoQueryCountByQuerySet = queryCountByQuerySet
        self.items = items
    }

    /// The longest query list of any item, given the forward schedule's attending rows (video rows and
    /// the longest valid text).
    func maximumQueryCount(forward: AttentionSchedule) -> Int {
        let longestText = forward.attendingRows.count - forward.realVideoCount
        return max(forward.attendingRows.count, (videoQueryCountByQuerySet.max() ?? 0) + longestText)
    }
}
