import Testing

@testable import STAGeometry

struct PlanCase: CustomStringConvertible, Sendable {
    let canvas: [Int]
    let tile: [Int]
    let textCount: Int
    let textValid: Int
    let windows: [[Int]]
    var description: String { "canvas \(canvas) tile \(tile) text \(textValid)/\(textCount) windows \(windows)" }
}

@Suite("AttentionPlan")
struct AttentionPlanTests {
    static let cases: [PlanCase] = [
        PlanCase(canvas: [13], tile: [3], textCount: 3, textValid: 2, windows: [[1], [3], [6]]),
        PlanCase(canvas: [20], tile: [2], textCount: 0, textValid: 0, windows: [[5], [7], [3], [10]]),
        PlanCase(canvas: [5, 7], tile: [2, 3], textCount: 2, textValid: 2, windows: [[1, 3], [3, 1], [1, 1], [4, 5]]),
        PlanCase(canvas: [11, 9], tile: [2, 1], textCount: 1, textValid: 0, windows: [[3, 5], [5, 3], [1, 7]]),
        PlanCase(canvas: [3, 5, 7], tile: [2, 2, 3], textCount: 2, textValid: 1, windows: [[1, 1, 1], [2, 3, 1], [1, 3, 3], [3, 1, 1]]),
        PlanCase(canvas: [4, 6, 5], tile: [1, 2, 2], textCount: 0, textValid: 0, windows: [[3, 3, 3], [3, 1, 3]]),
    ]

    /// `allows`, attended pairs, video sparsity and effective FLOPs against a token-level evaluation of
    /// spec §2 written from canvas coordinates.
    @Test(arguments: cases)
    func planMatchesBruteForce(_ c: PlanCase) throws {
        let layout = try STALayout(canvas: c.canvas, tile: c.tile, textCount: c.textCount, textValid: c.textValid)
        let brute = BruteGeometry(canvas: c.canvas, tile: c.tile, textCount: c.textCount, textValid: c.textValid)
        let plan = try AttentionPlan(layout: layout, headWindows: c.windows.map { Window(tiles: $0) })
        #expect(plan.heads == c.windows.count)
        let s = brute.sequenceLength
        let tokens = (0..<s).map(brute.token)
        var allPairs = 0
        for (head, window) in c.windows.enumerated() {
            var pairs = 0
            var videoPairs = 0
            var mismatches = 0
            for query in 0..<s {
                for key in 0..<s {
                    let expected = brute.allows(query: tokens[query], key: tokens[key], window: window)
                    if plan.allows(head: head, query: query, key: key) != expected { mismatches += 1 }
                    if expected {
                        pairs += 1
                        if query < brute.paddedVideo && key < brute.paddedVideo { videoPairs += 1 }
                    }
                }
            }
            #expect(mismatches == 0, "head \(head)")
            #expect(plan.attendedPairs(head: head) == pairs, "head \(head)")
            let n = Double(brute.video)
            #expect(abs(plan.videoSparsity(head: head) - (1 - Double(videoPairs) / (n * n))) < 1e-12)
            allPairs += pairs
        }
        #expect(plan.effectiveFLOPs(batch: 3, headDim: 16) == 4 * 16 * 3 * Double(allPairs))
        let real = Double(brute.video + c.textValid)
        #expect(plan.denseFLOPs(batch: 3, headDim: 16) == 4 * 16 * 3 * Double(c.windows.count) * real * real)
    }

    /// Every query tile of a head has ∏ window key tiles (the centre clamp keeps the count), ascending and
    /// distinct; without holes every query tile also meets the same number of real key tokens.
    @Test(arguments: 0..<30)
    func uniformKeyTilesPerQueryTile(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &+ 1000)
        let rank = Int.random(in: 1...3, using: &rng)
        let tile = (0..<rank).map { _ in Int.random(in: 1...3, using: &rng) }
        let grid = (0..<rank).map { _ in Int.random(in: 1...7, using: &rng) }
        let holes = seed % 2 == 1
        let canvas = (0..<rank).map { axis in
            grid[axis] * tile[axis] - (holes && grid[axis] > 1 ? Int.random(in: 0..<tile[axis], using: &rng) : 0)
        }
        let layout = try STALayout(canvas: canvas, tile: tile)
        let heads = 3
        let windows = (0..<heads).map { _ in
            Window(tiles: grid.map { n in
                // Odd sizes, or any size reaching the whole axis.
                Bool.random(using: &rng) ? 2 * Int.random(in: 0...3, using: &rng) + 1 : n + Int.random(in: 0...2, using: &rng)
            })
        }
        let plan = try AttentionPlan(layout: layout, headWindows: windows)
        for head in 0..<heads {
            let expectedCount = zip(windows[head].tiles, layout.tileGrid).map { min($0, $1) }.reduce(1, *)
            #expect(plan.window(head: head).tileCount == expectedCount)
            var realKeyCounts = Set<Int>()
            for queryTile in 0..<layout.tileCount {
                let keys = plan.keyTiles(head: head, queryTile: queryTile).map(Int.init)
                #expect(keys.count == expectedCount)
                #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 < $1 })
                realKeyCounts.insert(keys.reduce(0) { $0 + layout.realTokenCount(inTile: $1) })
            }
            if !layout.hasHoles {
                #expect(realKeyCounts == [expectedCount * layout.tileVolume])
            }
        }
    }

    static func hunyuan() throws -> STALayout {
        try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
    }

    @Test func hunyuanSparsity() throws {
        let layout = try Self.hunyuan()
        #expect(layout.tileGrid == [5, 6, 10])
        #expect(layout.sequenceLength == 115_456)
        let small = try AttentionPlan(layout: layout, window: layout.window(tokens: [18, 24, 24]), heads: 2)
        #expect(small.window(head: 0) == Window(tiles: [3, 3, 3]))
        #expect(abs(small.videoSparsity - 0.91) < 1e-12)
        let large = try AttentionPlan(layout: layout, window: Window(tiles: [5, 5, 5]), heads: 1)
        #expect(abs(large.videoSparsity - 0.583_333_333_333_333_3) < 1e-12)
    }

    /// Spec §7's mixed per-head windows build, share storage by window, and count as the formula says.
    @Test func hunyuanMixedWindows() throws {
        let layout = try Self.hunyuan()
        let groups: [(count: Int, window: [Int])] = [
            (10, [5, 3, 3]), (8, [1, 6, 10]), (3, [3, 3, 5]), (2, [5, 1, 10]), (1, [5, 6, 1]),
        ]
        let headWindows = groups.flatMap { Array(repeating: Window(tiles: $0.window), count: $0.count) }
        let plan = try AttentionPlan(layout: layout, headWindows: headWindows)
        #expect(plan.heads == 24)
        #expect(plan.windows.count == 5)
        // No holes: a head attends videoTokens · (∏ window · 384) video pairs, plus the text pairs.
        let n = 115_200
        let text = 256
        var pairs = 0
        for group in groups {
            pairs += group.count * (n * group.window.reduce(1, *) * 384 + 2 * n * text + text * text)
        }
        #expect(plan.effectiveFLOPs(batch: 1, headDim: 128) == 4 * 128 * Double(pairs))
    }
}
