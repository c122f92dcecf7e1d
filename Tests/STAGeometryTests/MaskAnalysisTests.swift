import Testing

@testable import STAGeometry

// Paper Table 1 (canvas 48³, tile 4³, blocks of one tile = 64 × 64 tokens), as given in the paper summary:
//
//   | Tiled NATTEN | (11,11,11) | 0.06 % dense | 7.17 % mixed |
//   | STA          | (12,12,12) | 1.56 % dense | 0.0 % mixed  |
//   | STA          | (20,20,20) | 7.23 % dense | 0.0 % mixed  |
//
// The STA rows are reproduced exactly (27/1728 and 125/1728). The tiled NATTEN row is not, and cannot be
// with the spec's definition (centre clamped inward per token). The mask is a product over axes, so the
// 3D fractions are the cubes of the 1D ones (12 tiles of 4 tokens, w = 11, r = 5): an interior query tile
// 4i..4i+3 meets key tokens 4i−5 ... 4i+8 (5 key tiles) and all its queries share 4i−2 ... 4i+5 (1 whole
// key tile); at the borders the clamp widens the shared part (tiles 0 and 11: 2 dense of 3, tiles 1 and 10:
// 1 dense of 4). So 14 dense and 54 non-empty of 144 per axis: 14³ = 2,744 dense (0.092 %) and
// 54³ − 14³ = 154,720 mixed (5.18 %) of 144³ block pairs. The paper's numbers are the interior-row values:
// 1/1728 = 0.058 % dense and (5³ − 1)/1728 = 7.18 % mixed, i.e. every query tile counted as if far from
// the border. The test asserts our exact counts and that interior rows give the paper's per-row values.

/// The mask rules of spec §5 restated per token from canvas coordinates.
struct BruteMask {
    let geometry: BruteGeometry
    let family: MaskFamily

    func allows(_ q: [Int], _ k: [Int]) -> Bool {
        switch family {
        case .full:
            return true
        case let .sta(window):
            return geometry.staAllows(query: q, key: k, window: window.tiles)
        case let .natten(w), let .tiledNatten(w):
            for axis in 0..<geometry.rank where w[axis] < geometry.canvas[axis] {
                let r = w[axis] / 2
                let c = min(max(q[axis], r), geometry.canvas[axis] - 1 - r)
                if abs(c - k[axis]) > r { return false }
            }
            return true
        case let .swin(w, shifted):
            for axis in 0..<geometry.rank where w[axis] < geometry.canvas[axis] {
                let shift = shifted ? w[axis] / 2 : 0
                func window(_ x: Int) -> Int { x < shift ? -1 : (x - shift) / w[axis] }
                if window(q[axis]) != window(k[axis]) { return false }
            }
            return true
        }
    }

    /// Canvas position at each sequence position of the family's order (nil for holes).
    var order: [[Int]?] {
        if case .natten = family {
            return (0..<geometry.video).map { BruteGeometry.coordinates($0, geometry.canvas) }
        }
        return (0..<geometry.paddedVideo).map { geometry.position(tileOrder: $0) }
    }

    /// Block classes and attended pairs from the explicit mask.
    func classify(queryBlock: Int, keyBlock: Int) -> (classes: [BlockClass], pairs: Int) {
        let order = order
        let s = order.count
        let rows = (s + queryBlock - 1) / queryBlock
        let columns = (s + keyBlock - 1) / keyBlock
        var attended = [Int](repeating: 0, count: rows * columns)
        var total = [Int](repeating: 0, count: rows * columns)
        for i in 0..<s {
            guard let q = order[i] else { continue }
            for j in 0..<s {
                guard let k = order[j] else { continue }
                let block = (i / queryBlock) * columns + j / keyBlock
                total[block] += 1
                if allows(q, k) { attended[block] += 1 }
            }
        }
        let classes = zip(attended, total).map { a, t -> BlockClass in
            a == 0 ? .empty : (a == t ? .dense : .mixed)
        }
        return (classes, attended.reduce(0, +))
    }
}

struct AnalysisCase: CustomStringConvertible, Sendable {
    let canvas: [Int]
    let tile: [Int]
    let family: MaskFamily
    var description: String { "canvas \(canvas) tile \(tile) \(family)" }
}

@Suite("MaskAnalysis")
struct MaskAnalysisTests {
    static let bruteCases: [AnalysisCase] = {
        var cases = [AnalysisCase]()
        let oneD: [MaskFamily] = [
            .full, .sta(Window(tiles: [3])), .sta(Window(tiles: [1])), .natten(windowTokens: [5]),
            .tiledNatten(windowTokens: [3]), .tiledNatten(windowTokens: [11]), .swin(windowTokens: [4], shifted: false),
            .swin(windowTokens: [4], shifted: true), .swin(windowTokens: [5], shifted: true),
        ]
        cases += oneD.map { AnalysisCase(canvas: [11], tile: [3], family: $0) }
        let twoD: [MaskFamily] = [
            .full, .sta(Window(tiles: [3, 1])), .sta(Window(tiles: [1, 5])), .natten(windowTokens: [3, 5]),
            .natten(windowTokens: [9, 1]), .tiledNatten(windowTokens: [5, 3]), .tiledNatten(windowTokens: [3, 10]),
            .swin(windowTokens: [3, 4], shifted: false), .swin(windowTokens: [4, 6], shifted: true),
        ]
        cases += twoD.map { AnalysisCase(canvas: [9, 10], tile: [2, 3], family: $0) }
        let threeD: [MaskFamily] = [
            .full, .sta(Window(tiles: [1, 3, 1])), .sta(Window(tiles: [2, 1, 3])), .natten(windowTokens: [3, 3, 1]),
            .natten(windowTokens: [1, 5, 3]), .tiledNatten(windowTokens: [3, 3, 3]), .swin(windowTokens: [2, 3, 2], shifted: false),
            .swin(windowTokens: [2, 4, 3], shifted: true),
        ]
        cases += threeD.map { AnalysisCase(canvas: [4, 7, 5], tile: [2, 2, 3], family: $0) }
        return cases
    }()

    /// Every family, several block shapes (single tokens, sub-tile, whole tiles, misaligned, larger than the
    /// sequence): the classes equal those of the explicit mask.
    @Test(arguments: bruteCases)
    func matchesExplicitMask(_ c: AnalysisCase) throws {
        let layout = try STALayout(canvas: c.canvas, tile: c.tile)
        let brute = BruteMask(geometry: BruteGeometry(canvas: c.canvas, tile: c.tile, textCount: 0, textValid: 0), family: c.family)
        let v = layout.tileVolume
        let s = brute.order.count
        for (qb, kb) in [(1, 1), (v, v), (3, 5), (v / 2 + 1, v), (7, 2), (2 * v, v), (s, s), (s + 3, 4)] {
            let analysis = try MaskAnalysis(layout: layout, family: c.family, queryBlock: qb, keyBlock: kb)
            let expected = brute.classify(queryBlock: qb, keyBlock: kb)
            #expect(analysis.sequenceLength == s)
            #expect(analysis.rows == (s + qb - 1) / qb && analysis.columns == (s + kb - 1) / kb)
            #expect(analysis.classes == expected.classes, "blocks \(qb)×\(kb)")
            #expect(analysis.attendedPairs == expected.pairs, "blocks \(qb)×\(kb)")
            #expect(analysis.dense == expected.classes.count(where: { $0 == .dense }))
            #expect(analysis.mixed == expected.classes.count(where: { $0 == .mixed }))
            #expect(analysis.dense + analysis.mixed + analysis.empty == analysis.blockCount)
        }
    }

    /// The STA mask of the analysis is the plan's: compare with `AttentionPlan.allows` token by token.
    @Test func staAgreesWithPlan() throws {
        let layout = try STALayout(canvas: [5, 7, 4], tile: [2, 3, 2])
        let window = Window(tiles: [3, 1, 2])
        let plan = try AttentionPlan(layout: layout, window: window, heads: 1)
        let analysis = try MaskAnalysis(layout: layout, family: .sta(window), queryBlock: 1, keyBlock: 1)
        for q in 0..<analysis.rows {
            for k in 0..<analysis.columns {
                #expect((analysis.blockClass(row: q, column: k) == .dense) == plan.allows(head: 0, query: q, key: k))
            }
        }
        #expect(analysis.attendedPairs == plan.attendedPairs(head: 0))
    }

    @Test func paperTable1STA() throws {
        let layout = try STALayout(canvas: [48, 48, 48], tile: [4, 4, 4])
        let small = try MaskAnalysis(layout: layout, family: .sta(layout.window(tokens: [12, 12, 12])), queryBlock: 64, keyBlock: 64)
        #expect(small.rows == 1728 && small.columns == 1728)
        #expect(small.dense == 27 * 1728)
        #expect(small.mixed == 0)
        #expect(small.denseFraction == 0.015625)  // 1.56 %
        let large = try MaskAnalysis(layout: layout, family: .sta(layout.window(tokens: [20, 20, 20])), queryBlock: 64, keyBlock: 64)
        #expect(large.dense == 125 * 1728)
        #expect(large.mixed == 0)
        #expect(large.denseFraction == 125.0 / 1728.0)  // 7.23 %
        #expect((large.denseFraction * 10000).rounded() == 723)
    }

    @Test func paperTable1TiledNATTEN() throws {
        let layout = try STALayout(canvas: [48, 48, 48], tile: [4, 4, 4])
        let family = MaskFamily.tiledNatten(windowTokens: [11, 11, 11])
        let analysis = try MaskAnalysis(layout: layout, family: family, queryBlock: 64, keyBlock: 64)
        #expect(analysis.dense == 14 * 14 * 14)
        #expect(analysis.mixed == 54 * 54 * 54 - 14 * 14 * 14)
        // Factorisation: the 3D counts are the cubes of the 1D ones.
        let line = try MaskAnalysis(
            layout: STALayout(canvas: [48], tile: [4]), family: .tiledNatten(windowTokens: [11]), queryBlock: 4, keyBlock: 4)
        #expect(line.dense == 14 && line.dense + line.mixed == 54)
        #expect(analysis.dense == line.dense * line.dense * line.dense)
        // Every query attends exactly 11³ keys.
        #expect(analysis.attendedPairs == 48 * 48 * 48 * 11 * 11 * 11)
        // Interior query tiles (2...9 on every axis) give the paper's per-row values: 1 dense, 124 mixed.
        for tileCoordinates in [[2, 2, 2], [5, 7, 3], [9, 9, 9], [4, 2, 8]] {
            let row = layout.tileIndex(atTileCoordinates: tileCoordinates)
            let classes = analysis.classes[(row * analysis.columns)..<((row + 1) * analysis.columns)]
            #expect(classes.count(where: { $0 == .dense }) == 1)
            #expect(classes.count(where: { $0 == .mixed }) == 124)
        }
        let edge = layout.tileIndex(atTileCoordinates: [0, 0, 0])
        let edgeClasses = analysis.classes[(edge * analysis.columns)..<((edge + 1) * analysis.columns)]
        #expect(edgeClasses.count(where: { $0 == .dense }) == 8)
    }

    /// Full attention: every block holding real tokens on both sides is dense.
    @Test func fullIsDense() throws {
        let noHoles = try STALayout(canvas: [6, 8, 4], tile: [3, 2, 2])
        for (qb, kb) in [(1, 1), (5, 7), (64, 128), (200, 13)] {
            let analysis = try MaskAnalysis(layout: noHoles, family: .full, queryBlock: qb, keyBlock: kb)
            #expect(analysis.dense == analysis.blockCount)
            #expect(analysis.denseFraction == 1)
            #expect(analysis.attendedPairs == 192 * 192)
        }
        // Tile 4 on 5 tokens: positions 5, 6, 7 are holes; blocks of 3 → the block 6..<8 holds no token.
        let holes = try MaskAnalysis(layout: STALayout(canvas: [5], tile: [4]), family: .full, queryBlock: 3, keyBlock: 3)
        #expect(holes.mixed == 0)
        #expect(holes.classGrid == [2, 2, 0, 2, 2, 0, 0, 0, 0])
    }

    /// STA with blocks inside one tile (block sizes dividing the tile volume) is never mixed, holes or not;
    /// without holes its dense fraction is ∏ window / tileCount.
    @Test(arguments: 0..<12)
    func staTileAlignedNeverMixed(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &+ 77)
        let rank = Int.random(in: 1...3, using: &rng)
        let tile = (0..<rank).map { _ in Int.random(in: 1...4, using: &rng) }
        let grid = (0..<rank).map { _ in Int.random(in: 1...6, using: &rng) }
        let holes = seed % 2 == 1
        let canvas = (0..<rank).map { a in grid[a] * tile[a] - (holes && grid[a] > 1 ? Int.random(in: 0..<tile[a], using: &rng) : 0) }
        let layout = try STALayout(canvas: canvas, tile: tile)
        let window = try layout.resolve(Window(tiles: grid.map { n in n > 2 ? 2 * Int.random(in: 0...((n - 1) / 2), using: &rng) + 1 : n }))
        let divisors = (1...layout.tileVolume).filter { layout.tileVolume % $0 == 0 }
        for _ in 0..<3 {
            let qb = divisors.randomElement(using: &rng)!
            let kb = divisors.randomElement(using: &rng)!
            let analysis = try MaskAnalysis(layout: layout, family: .sta(window), queryBlock: qb, keyBlock: kb)
            #expect(analysis.mixed == 0, "\(layout) window \(window) blocks \(qb)×\(kb)")
            if !layout.hasHoles {
                #expect(analysis.denseFraction == Double(window.tileCount) / Double(layout.tileCount))
            }
        }
    }

    /// NATTEN: every query attends exactly ∏ w keys, in either order; Swin: Σ over windows of |window|².
    @Test func pairCounts() throws {
        let layout = try STALayout(canvas: [7, 12, 10], tile: [2, 4, 3])
        for w in [[3, 5, 5], [1, 1, 1], [7, 11, 9], [5, 12, 1]] {
            for family in [MaskFamily.natten(windowTokens: w), .tiledNatten(windowTokens: w)] {
                let analysis = try MaskAnalysis(layout: layout, family: family, queryBlock: 96, keyBlock: 40)
                #expect(analysis.attendedPairs == 840 * w.reduce(1, *), "\(family)")
            }
        }
        for (w, shifted) in [([3, 5, 4], false), ([3, 5, 4], true), ([7, 2, 10], true)] {
            let analysis = try MaskAnalysis(layout: layout, family: .swin(windowTokens: w, shifted: shifted), queryBlock: 50, keyBlock: 50)
            var expected = 1
            for (n, size) in zip([7, 12, 10], w) {
                // Window lengths along the axis, the shifted head window first.
                let shift = shifted && size < n ? size / 2 : 0
                var lengths = shift > 0 ? [shift] : []
                var start = shift
                while start < n {
                    lengths.append(min(size, n - start))
                    start += size
                }
                expected *= lengths.reduce(0) { $0 + $1 * $1 }
            }
            #expect(analysis.attendedPairs == expected, "\(w) shifted \(shifted)")
        }
    }

    /// The headline setting: HunyuanVideo canvas, 128 × 128 blocks (900 × 900 block pairs).
    @Test func hunyuanBlocks() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
        let sta = try MaskAnalysis(layout: layout, family: .sta(Window(tiles: [3, 3, 3])), queryBlock: 128, keyBlock: 128)
        #expect(sta.rows == 900 && sta.columns == 900)
        #expect(sta.mixed == 0)
        #expect(sta.denseFraction == 27.0 / 300.0)  // 1 − 0.91 sparsity
        let natten = try MaskAnalysis(layout: layout, family: .natten(windowTokens: [17, 25, 25]), queryBlock: 128, keyBlock: 128)
        #expect(natten.attendedPairs == 115_200 * 17 * 25 * 25)
        #expect(natten.mixed > natten.dense)
    }

    @Test func invalidInputs() throws {
        let layout = try STALayout(canvas: [9, 10], tile: [3, 5])
        #expect(throws: GeometryError.nonPositiveBlockSize(what: "query block", tokens: 0)) {
            try MaskAnalysis(layout: layout, family: .full, queryBlock: 0, keyBlock: 4)
        }
        #expect(throws: GeometryError.nonPositiveBlockSize(what: "key block", tokens: -2)) {
            try MaskAnalysis(layout: layout, family: .full, queryBlock: 4, keyBlock: -2)
        }
        #expect(throws: GeometryError.evenTokenWindow(axis: 1, windowTokens: 4, canvasTokens: 10)) {
            try MaskAnalysis(layout: layout, family: .natten(windowTokens: [3, 4]), queryBlock: 4, keyBlock: 4)
        }
        // An even window equal to the axis is the whole axis.
        _ = try MaskAnalysis(layout: layout, family: .tiledNatten(windowTokens: [3, 10]), queryBlock: 4, keyBlock: 4)
        #expect(throws: GeometryError.windowLargerThanCanvas(axis: 0, windowTokens: 11, canvasTokens: 9)) {
            try MaskAnalysis(layout: layout, family: .tiledNatten(windowTokens: [11, 3]), queryBlock: 4, keyBlock: 4)
        }
        #expect(throws: GeometryError.windowLargerThanCanvas(axis: 1, windowTokens: 12, canvasTokens: 10)) {
            try MaskAnalysis(layout: layout, family: .swin(windowTokens: [3, 12], shifted: true), queryBlock: 4, keyBlock: 4)
        }
        #expect(throws: GeometryError.nonPositiveExtent(what: "window", axis: 0, value: 0)) {
            try MaskAnalysis(layout: layout, family: .swin(windowTokens: [0, 2], shifted: false), queryBlock: 4, keyBlock: 4)
        }
        #expect(throws: GeometryError.rankMismatch(what: "token window", expected: 2, actual: 3)) {
            try MaskAnalysis(layout: layout, family: .natten(windowTokens: [3, 3, 3]), queryBlock: 4, keyBlock: 4)
        }
        #expect(throws: GeometryError.evenWindow(axis: 0, windowTiles: 2, axisTiles: 3)) {
            try MaskAnalysis(layout: layout, family: .sta(Window(tiles: [2, 1])), queryBlock: 4, keyBlock: 4)
        }
        let line = try STALayout(canvas: [40_000], tile: [8])
        #expect(throws: GeometryError.blockGridTooLarge(rows: 40_000, columns: 20_000, limit: MaskAnalysis.maximumBlockCount)) {
            try MaskAnalysis(layout: line, family: .full, queryBlock: 1, keyBlock: 2)
        }
        #expect(GeometryError.nonPositiveBlockSize(what: "query block", tokens: 0).description.contains("at least 1"))
        #expect(GeometryError.evenTokenWindow(axis: 1, windowTokens: 4, canvasTokens: 10).description.contains("odd"))
        #expect(GeometryError.windowLargerThanCanvas(axis: 0, windowTokens: 11, canvasTokens: 9).description.contains("1...9"))
        #expect(GeometryError.blockGridTooLarge(rows: 1, columns: 2, limit: 3).description.contains("at most 3"))
    }

    @Test func gridAccess() throws {
        let analysis = try MaskAnalysis(
            layout: STALayout(canvas: [12], tile: [3]), family: .sta(Window(tiles: [1])), queryBlock: 3, keyBlock: 6)
        #expect(analysis.rows == 4 && analysis.columns == 2)
        // Query tile t attends key tile t only: key blocks hold tiles {0, 1} and {2, 3}.
        #expect(analysis.classGrid == [1, 0, 1, 0, 0, 1, 0, 1])
        #expect(analysis.blockClass(row: 3, column: 1) == .mixed)
        #expect(analysis.blockClass(row: 4, column: 0) == nil)
        #expect(analysis.blockClass(row: 0, column: -1) == nil)
        #expect(abs(analysis.mixedFraction - 0.5) < 1e-15 && analysis.emptyFraction == 0.5)
    }
}
