extension AttentionPlan {
    /// The inverse of the key-tile lists, for the backward pass: for each window `w` and key tile `t`, the
    /// query tiles whose key tiles (under `w`) contain `t`, ascending, as Int32 CSR.
    ///
    /// Row `w · tileCount + t` is `queryTiles[queryTileStart[row] ..< queryTileStart[row + 1]]`;
    /// `queryTileStart` has `windows.count · tileCount + 1` entries. Text is not listed: every valid text
    /// query attends every real video key.
    ///
    /// Cost: O(keyTiles.count + windows · tileCount) time and memory (two counting passes).
    public func inverseKeyTileLists() -> (queryTileStart: [Int32], queryTiles: [Int32]) {
        let tileCount = layout.tileCount
        let rowCount = windows.count * tileCount
        var start = [Int32](repeating: 0, count: rowCount + 1)
        for window in 0..<windows.count {
            for queryTile in 0..<tileCount {
                let row = window * tileCount + queryTile
                for position in Int(keyTileStart[row])..<Int(keyTileStart[row + 1]) {
                    start[window * tileCount + Int(keyTiles[position]) + 1] += 1
                }
            }
        }
        for row in 0..<rowCount { start[row + 1] += start[row] }
        var fill = Array(start.dropLast())
        var queryTiles = [Int32](repeating: 0, count: Int(start[rowCount]))
        // Query tiles are visited in ascending order, so every row comes out sorted.
        for window in 0..<windows.count {
            for queryTile in 0..<tileCount {
                let row = window * tileCount + queryTile
                for position in Int(keyTileStart[row])..<Int(keyTileStart[row + 1]) {
                    let inverseRow = window * tileCount + Int(keyTiles[position])
                    queryTiles[Int(fill[inverseRow])] = Int32(queryTile)
                    fill[inverseRow] += 1
                }
            }
        }
        return (start, queryTiles)
    }
}
