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
        let (start, queryTiles) = plan.inverseKeyTileLists()
        // Consecutive key tiles attended by the same query tiles share items (as in the forward).
        let (items, queryCountByQuerySet) = AttentionSchedule.workItems(
            plan: plan, batch: batch, start: start, tiles: queryTiles, tileRealStart: forward.tileRealStart,
            textValid: { Int(forward.textValid[$0]) }, weight: 4)

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
