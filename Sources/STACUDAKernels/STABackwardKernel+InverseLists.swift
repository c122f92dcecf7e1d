import STAGeometry

extension STABackwardKernel {
    /// The inverse of `plan`'s key-tile lists: for each window `w` and key tile `t`, the query tiles
    /// whose key tiles (under `w`) contain `t`, ascending, as Int32 CSR.
    ///
    /// Row `w · tileCount + t` is `queryTiles[queryTileStart[row] ..< queryTileStart[row + 1]]`;
    /// `queryTileStart` has `plan.windows.count · tileCount + 1` entries. Text is not listed: every valid
    /// text query attends every real video key, which the dK/dV kernel adds itself.
    ///
    /// Cost: O(plan.keyTiles.count + windows · tileCount) time and memory (two counting passes).
    public static func inverseKeyTileLists(plan: AttentionPlan) -> (queryTileStart: [Int32], queryTiles: [Int32]) {
        let tileCount = plan.layout.tileCount
        let rowCount = plan.windows.count * tileCount
        var start = [Int32](repeating: 0, count: rowCount + 1)
        for window in 0..<plan.windows.count {
            for queryTile in 0..<tileCount {
                let row = window * tileCount + queryTile
                for position in Int(plan.keyTileStart[row])..<Int(plan.keyTileStart[row + 1]) {
                    start[window * tileCount + Int(plan.keyTiles[position]) + 1] += 1
                }
            }
        }
        for row in 0..<rowCount { start[row + 1] += start[row] }
        var fill = Array(start.dropLast())
        var queryTiles = [Int32](repeating: 0, count: Int(start[rowCount]))
        // Query tiles are visited in ascending order, so every row comes out sorted.
        for window in 0..<plan.windows.count {
            for queryTile in 0..<tileCount {
                let row = window * tileCount + queryTile
                for position in Int(plan.keyTileStart[row])..<Int(plan.keyTileStart[row + 1]) {
                    let inverseRow = window * tileCount + Int(plan.keyTiles[position])
                    queryTiles[Int(fill[inverseRow])] = Int32(queryTile)
                    fill[inverseRow] += 1
                }
            }
        }
        return (start, queryTiles)
    }
}
