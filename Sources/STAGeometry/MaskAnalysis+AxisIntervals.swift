/// The key interval of every query coordinate along one canvas axis, with the prefix sums and split
/// points that count attended pairs between a run of queries and a run of keys in O(1).
///
/// Query coordinate q attends the key coordinates `lower[q] ..< upper[q]` (non-empty), and both bounds are
/// non-decreasing in q — true of every `MaskFamily`. Then, for queries `q0 ..< q1` and keys `k0 ..< k1`,
/// the queries whose interval meets the keys form one run `s ..< e`, and over that run
/// Σ |[lower, upper) ∩ [k0, k1)| = Σ min(upper, k1) − Σ max(lower, k0), each sum split at one point.
struct AxisKeyIntervals: Sendable {
    /// Tokens along the axis (real tokens only).
    let length: Int
    let lower: [Int]
    let upper: [Int]
    /// `lowerPrefix[q]` = Σ lower[q'] for q' < q; same for upper.
    private let lowerPrefix: [Int]
    private let upperPrefix: [Int]
    /// Indexed by a key coordinate k in 0...length: the first q with upper[q] > k.
    private let firstUpperAbove: [Int]
    /// The first q with upper[q] ≥ k.
    private let firstUpperAtLeast: [Int]
    /// The first q with lower[q] ≥ k.
    private let firstLowerAtLeast: [Int]

    /// Cost: O(length).
    init(lower: [Int], upper: [Int]) {
        let n = lower.count
        length = n
        self.lower = lower
        self.upper = upper
        var lowerPrefix = [Int](repeating: 0, count: n + 1)
        var upperPrefix = [Int](repeating: 0, count: n + 1)
        for q in 0..<n {
            lowerPrefix[q + 1] = lowerPrefix[q] + lower[q]
            upperPrefix[q + 1] = upperPrefix[q] + upper[q]
        }
        func firstIndex(where isPast: (Int, Int) -> Bool) -> [Int] {
            var result = [Int](repeating: n, count: n + 1)
            var q = 0
            for k in 0...n {
                while q < n && !isPast(q, k) { q += 1 }
                result[k] = q
            }
            return result
        }
        self.lowerPrefix = lowerPrefix
        self.upperPrefix = upperPrefix
        firstUpperAbove = firstIndex { q, k in upper[q] > k }
        firstUpperAtLeast = firstIndex { q, k in upper[q] >= k }
        firstLowerAtLeast = firstIndex { q, k in lower[q] >= k }
    }

    /// The whole axis for every query.
    static func whole(length: Int) -> AxisKeyIntervals {
        AxisKeyIntervals(lower: Array(repeating: 0, count: length), upper: Array(repeating: length, count: length))
    }

    /// Attended (query, key) coordinate pairs with query in `q0 ..< q1` and key in `k0 ..< k1`, both
    /// non-empty sub-ranges of `0 ..< length`. Cost: O(1).
    @inline(__always)
    func pairs(_ q0: Int, _ q1: Int, _ k0: Int, _ k1: Int) -> Int {
        let s = max(q0, firstUpperAbove[k0])
        let e = min(q1, firstLowerAtLeast[k1])
        guard s < e else { return 0 }
        let c = min(max(firstUpperAtLeast[k1], s), e)
        let d = min(max(firstLowerAtLeast[k0], s), e)
        let sumOfMin = (upperPrefix[c] - upperPrefix[s]) + k1 * (e - c)
        let sumOfMax = k0 * (d - s) + (lowerPrefix[e] - lowerPrefix[d])
        return sumOfMin - sumOfMax
    }
}

extension MaskFamily {
    /// The per-axis key intervals of this family on `layout`, in rank-3 normal form (leading unit axes
    /// first), after validating the family's window. Cost: O(Σ canvas extents).
    func axisKeyIntervals(layout: STALayout) throws(GeometryError) -> [AxisKeyIntervals] {
        let rank = layout.rank
        let extents = layout.canvas.extents
        var axes = [AxisKeyIntervals](repeating: .whole(length: 1), count: 3 - rank)
        switch self {
        case .full:
            for axis in 0..<rank { axes.append(.whole(length: extents[axis])) }

        case let .sta(window):
            let resolved = try layout.resolve(window)
            for axis in 0..<rank {
                let n = extents[axis]
                let tile = layout.tile.extents[axis]
                var lower = [Int](repeating: 0, count: n)
                var upper = [Int](repeating: 0, count: n)
                for q in 0..<n {
                    let keyTiles = layout.keyTileRange(axis: axis, queryTile: q / tile, windowTiles: resolved.tiles[axis])
                    lower[q] = keyTiles.lowerBound * tile
                    upper[q] = min(keyTiles.upperBound * tile, n)
                }
                axes.append(AxisKeyIntervals(lower: lower, upper: upper))
            }

        case let .natten(sizes), let .tiledNatten(sizes):
            try Self.validateTokenWindow(sizes, layout: layout, needsOdd: true)
            for axis in 0..<rank {
                let n = extents[axis]
                let w = sizes[axis]
                guard w < n else { axes.append(.whole(length: n)); continue }
                // Centre clamp(q, r, n − 1 − r) with r = w div 2: the window starts at clamp(q − r, 0, n − w).
                let starts = (0..<n).map { q in min(max(q - w / 2, 0), n - w) }
                axes.append(AxisKeyIntervals(lower: starts, upper: starts.map { $0 + w }))
            }

        case let .swin(sizes, shifted):
            try Self.validateTokenWindow(sizes, layout: layout, needsOdd: false)
            for axis in 0..<rank {
                let n = extents[axis]
                let w = sizes[axis]
                guard w < n else { axes.append(.whole(length: n)); continue }
                let shift = shifted ? w / 2 : 0
                var lower = [Int](repeating: 0, count: n)
                var upper = [Int](repeating: 0, count: n)
                for q in 0..<n {
                    if q < shift {
                        lower[q] = 0
                        upper[q] = shift
                    } else {
                        let start = shift + (q - shift) / w * w
                        lower[q] = start
                        upper[q] = min(start + w, n)
                    }
                }
                axes.append(AxisKeyIntervals(lower: lower, upper: upper))
            }
        }
        return axes
    }

    /// One size per canvas axis, each in 1...canvas; when `needsOdd`, a size below the axis must be odd.
    private static func validateTokenWindow(_ sizes: [Int], layout: STALayout, needsOdd: Bool) throws(GeometryError) {
        guard sizes.count == layout.rank else {
            throw .rankMismatch(what: "token window", expected: layout.rank, actual: sizes.count)
        }
        for (axis, size) in sizes.enumerated() {
            let n = layout.canvas.extents[axis]
            guard size >= 1 else { throw .nonPositiveExtent(what: "window", axis: axis, value: size) }
            guard size <= n else { throw .windowLargerThanCanvas(axis: axis, windowTokens: size, canvasTokens: n) }
            if needsOdd && size < n && size % 2 == 0 {
                throw .evenTokenWindow(axis: axis, windowTokens: size, canvasTokens: n)
            }
        }
    }
}
