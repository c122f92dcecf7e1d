import STAGeometry

extension AttentionSchedule {
    /// The work items of one pass and the real video rows of each CSR row, for the forward (query blocks
    /// against key sets: the plan's CSR) and the backward's key side (key blocks against query sets: its
    /// inverse). Row sets are CSR rows `window · tileCount + tile` of (`start`, `tiles`).
    ///
    /// For every (batch, head): blocks of up to `queryBlockRows` real rows of each run of consecutive tiles
    /// whose CSR rows list the same tiles (windows clamped at a border; so that small tiles still fill
    /// blocks), then blocks of the batch row's attending rows with set −1 (every row: the text's). An item of
    /// r rows facing n rows costs weight · ⌈r / 16⌉ · 16 · (n + 16). Most expensive first; equal costs keep
    /// their (batch, head, tile) order, so that the threads work on neighbouring blocks of one head at a
    /// time and share the other side's rows in cache. Cost: O(plan size + B · H · S / 128).
    static func workItems(
        plan: AttentionPlan, batch: Int, start: [Int32], tiles: [Int32], tileRealStart: [Int32],
        textValid: (Int) -> Int, weight: Int
    ) -> (items: [WorkItem], videoCountBySet: [Int]) {
        let tileCount = plan.layout.tileCount
        var videoCountBySet = [Int](repeating: 0, count: plan.windows.count * tileCount)
        for set in 0..<videoCountBySet.count {
            for position in Int(start[set])..<Int(start[set + 1]) {
                let tile = Int(tiles[position])
                videoCountBySet[set] += Int(tileRealStart[tile + 1] - tileRealStart[tile])
            }
        }
        func sameTiles(_ a: Int, _ b: Int) -> Bool {
            let aStart = Int(start[a]), bStart = Int(start[b])
            let count = Int(start[a + 1]) - aStart
            guard count == Int(start[b + 1]) - bStart else { return false }
            for i in 0..<count where tiles[aStart + i] != tiles[bStart + i] { return false }
            return true
        }
        var tileRunsByWindow = [[Range<Int>]]()
        for window in 0..<plan.windows.count {
            var runs = [Range<Int>]()
            var first = 0
            while first < tileCount {
                var end = first + 1
                while end < tileCount, sameTiles(window * tileCount + first, window * tileCount + end) { end += 1 }
                runs.append(first..<end)
                first = end
            }
            tileRunsByWindow.append(runs)
        }

        let blockRows = queryBlockRows
        func cost(_ rows: Int, facing other: Int) -> Int { weight * ((rows + 15) / 16 * 16) * (other + 16) }
        let realVideoCount = Int(tileRealStart[tileCount])
        var items = [WorkItem]()
        for batchHead in 0..<(batch * plan.heads) {
            let window = Int(plan.windowIndexByHead[batchHead % plan.heads])
            let text = textValid(batchHead / plan.heads)
            let realCount = realVideoCount + text
            for run in tileRunsByWindow[window] {
                let set = window * tileCount + run.lowerBound
                let other = videoCountBySet[set] + text
                var first = Int(tileRealStart[run.lowerBound])
                let end = Int(tileRealStart[run.upperBound])
                while first < end {
                    let rows = min(blockRows, end - first)
                    items.append(
                        WorkItem(
                            batchHead: Int32(batchHead), keySet: Int32(set), rowStart: Int32(first),
                            rowCount: Int32(rows), cost: cost(rows, facing: other)))
                    first += rows
                }
            }
            var first = realVideoCount
            while first < realCount {
                let rows = min(blockRows, realCount - first)
                items.append(
                    WorkItem(
                        batchHead: Int32(batchHead), keySet: -1, rowStart: Int32(first), rowCount: Int32(rows),
                        cost: cost(rows, facing: realCount)))
                first += rows
            }
        }
        items = items.enumerated().sorted { ($0.element.cost, $1.offset) > ($1.element.cost, $0.offset) }
            .map(\.element)
        return (items, videoCountBySet)
    }
}
