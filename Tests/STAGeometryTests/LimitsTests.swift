import Testing
#if canImport(Glibc)
    import Glibc
#endif

@testable import STAGeometry

/// Sizes from callers are checked against `STALimits` with overflow-reporting arithmetic before anything
/// is allocated: every request ends with a plan or a clear error, never a trap.
@Suite struct LimitsTests {
    @Test func sequenceOverflowIsAnErrorNamingTheLimit() throws {
        // Int.max text tokens: padded video + text used to overflow and trap.
        let error = try #require(throws: GeometryError.self) {
            try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: Int.max)
        }
        #expect(error.description.contains("\(STALimits.maximumSequenceLength)"))
        // Just under the limit plus text just over it: the sum is checked too.
        let padded = 30 * 48 * 80
        #expect(throws: GeometryError.self) {
            try STALayout(
                canvas: [30, 48, 80], tile: [6, 8, 8], textCount: STALimits.maximumSequenceLength - padded + 1)
        }
        let fits = try STALayout(
            canvas: [30, 48, 80], tile: [6, 8, 8], textCount: STALimits.maximumSequenceLength - padded)
        #expect(fits.sequenceLength == STALimits.maximumSequenceLength)
    }

    @Test func canvasProductOverflowIsAnError() throws {
        // 10¹⁵ tokens, and a product that overflows Int.
        for canvas in [[100_000, 100_000, 100_000], [Int.max, Int.max, 2], [1 << 40, 1 << 40]] {
            let error = try #require(throws: GeometryError.self) { try Canvas(canvas) }
            #expect(error.description.contains("exceeds the limit of \(STALimits.maximumSequenceLength)"), "\(error)")
        }
        // Padding counts: 2²⁶ + 1 tokens with a 2²⁶-token tile pads to 2²⁷ + … tokens.
        #expect(throws: GeometryError.self) {
            try STALayout(canvas: [2, (1 << 26) + 1], tile: [1, 1 << 26])
        }
    }

    @Test func planTablesAreBoundedBeforeAllocation() throws {
        // 2²⁰ tiles with a whole-canvas window would list 2⁴⁰ pairs: refused up front.
        let layout = try STALayout(canvas: [1 << 20], tile: [1])
        let error = try #require(throws: GeometryError.self) {
            try AttentionPlan(layout: layout, window: Window(tiles: [1 << 20]), heads: 1)
        }
        #expect(error.description.contains("\(STALimits.maximumKeyTileEntries)"))
        // Too many heads.
        let small = try STALayout(canvas: [8, 8], tile: [4, 4])
        #expect(throws: GeometryError.exceedsLimit(what: "head count", value: "65536", limit: 65_535)) {
            try AttentionPlan(layout: small, window: Window(tiles: [1, 1]), heads: STALimits.maximumHeads + 1)
        }
        let many = try AttentionPlan(layout: small, window: Window(tiles: [1, 1]), heads: STALimits.maximumHeads)
        #expect(many.heads == STALimits.maximumHeads && many.windows.count == 1)
        // Counted per distinct window, so many heads cost no more than one.
        #expect(many.effectiveFLOPs(batch: 1, headDim: 1) == 4 * Double(STALimits.maximumHeads) * 4 * 16 * 16)
    }

    @Test func checkedHelpersReportOverflow() throws {
        #expect(try STALimits.product([3, 4, 5], "x", limit: 60) == 60)
        #expect(throws: GeometryError.self) { try STALimits.product([3, 4, 5], "x", limit: 59) }
        #expect(throws: GeometryError.self) { try STALimits.product([Int.max, 2], "x", limit: Int.max) }
        #expect(throws: GeometryError.self) { try STALimits.sum(Int.max, 1, "x", limit: Int.max) }
        #expect(try STALimits.check(5, "n", minimum: 1, maximum: 5) == 5)
        let low = try #require(throws: GeometryError.self) { try STALimits.check(-5, "--text", minimum: 0, maximum: 9) }
        #expect(low.description == "--text is -5; it must be 0 or more")
        let high = try #require(throws: GeometryError.self) { try STALimits.check(10, "--text", minimum: 0, maximum: 9) }
        #expect(high.description.contains("exceeds the limit of 9"))
    }

    @Test func limitTableNamesEveryLimitOnce() {
        let names = STALimits.table.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(STALimits.table.first { $0.name == "sequence_length" }?.value == 1 << 27)
    }

    /// Random and extreme sizes: every case is a plan or a `GeometryError`, never a trap. A plan that
    /// is built satisfies every limit and its counts are consistent.
    @Test func fuzzThePlanBuilder() throws {
        var random = SplitMix64(seed: 0x5EED_0013)
        let extremes = [
            Int.min, -1, 0, 1, 2, 3, 7, 64, 1 << 13, 1 << 26, (1 << 27) - 1, 1 << 27, (1 << 27) + 1, 1 << 31,
            1 << 40, Int.max - 1, Int.max,
        ]
        func size() -> Int {
            switch random.next() % 4 {
            case 0: return extremes[Int(random.next() % UInt64(extremes.count))]
            case 1: return Int(random.next() % 64) + 1
            case 2: return Int(random.next() % 4096) - 8
            default: return Int(truncatingIfNeeded: random.next()) >> Int(random.next() % 64)
            }
        }
        var built = 0
        var rejected = 0
        for _ in 0..<3000 {
            let rank = Int(random.next() % 5)  // 0 and 4 are invalid ranks
            let canvas = (0..<rank).map { _ in random.next() % 3 == 0 ? size() : Int(random.next() % 40) + 1 }
            let tile = (0..<rank).map { _ in random.next() % 3 == 0 ? size() : Int(random.next() % 8) + 1 }
            let text = random.next() % 2 == 0 ? Int(random.next() % 300) : size()
            let valid: Int? = random.next() % 2 == 0 ? nil : size()
            let heads = random.next() % 4 == 0 ? size() : Int(random.next() % 8) + 1
            let window = (0..<max(rank, 1)).map { _ in random.next() % 3 == 0 ? size() : Int(random.next() % 9) + 1 }
            do {
                let layout = try STALayout(canvas: canvas, tile: tile, textCount: text, textValid: valid)
                #expect(layout.sequenceLength <= STALimits.maximumSequenceLength)
                #expect(layout.videoTokenCount <= layout.paddedVideoTokenCount)
                if heads > STALimits.maximumHeads || heads < 1 {
                    #expect(throws: GeometryError.self) {
                        try AttentionPlan(layout: layout, window: Window(tiles: window), heads: heads)
                    }
                    rejected += 1
                    continue
                }
                // Large plans would only make the test slow; the table bound is tested above.
                guard layout.tileCount <= 1 << 12, heads <= 64 else {
                    built += 1
                    continue
                }
                let plan = try AttentionPlan(layout: layout, window: Window(tiles: window), heads: heads)
                #expect(plan.keyTiles.count <= STALimits.maximumKeyTileEntries)
                #expect(plan.keyTileStart.count == plan.windows.count * layout.tileCount + 1)
                let flops = plan.effectiveFLOPs(batch: 1, headDim: 1)
                #expect(flops.isFinite && flops >= 0)
                built += 1
            } catch {
                #expect(!"\(error)".isEmpty)
                rejected += 1
            }
        }
        // Both outcomes occur, so the generator reaches both sides of the limits.
        #expect(built > 100 && rejected > 100, "built \(built), rejected \(rejected)")
    }
}

/// docs/CLI.md documents every limit with its value; the Python package's copy is checked against the
/// same table (python/tests/test_limits.py).
@Suite struct LimitsDocumentationTests {
    @Test func theDocumentedTableMatchesTheConstants() throws {
        // Tests/STAGeometryTests/LimitsTests.swift → the repository root.
        let root = URLPath.root(of: #filePath)
        let text = try #require(readText(root + "/docs/CLI.md"), "docs/CLI.md not found")
        var documented = [String: Int]()
        for line in text.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: " ") }
            if cells.count >= 2, let value = Int(cells[1]) { documented[cells[0]] = value }
        }
        for (name, value) in STALimits.table {
            #expect(documented[name] == value, "docs/CLI.md: \(name) is \(documented[name].map(String.init) ?? "missing"), STALimits has \(value)")
        }
        #expect(documented.count == STALimits.table.count)
    }
}

private enum URLPath {
    static func root(of file: String) -> String {
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }
}

private func readText(_ path: String) -> String? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        bytes += chunk[0..<count]
        if count < chunk.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}

@Suite struct MaskAnalysisLimitTests {
    @Test func extremeBlockSizesAreAnswersOrErrorsNotTraps() throws {
        let layout = try STALayout(canvas: [8, 8], tile: [4, 4])
        // A block of Int.max tokens used to overflow in the ceiling division.
        let one = try MaskAnalysis(layout: layout, family: .full, queryBlock: Int.max, keyBlock: Int.max)
        #expect(one.rows == 1 && one.columns == 1 && one.dense == 1)
        // A long thin grid is bounded per side before its boxes are allocated.
        let long = try STALayout(canvas: [1 << 21], tile: [1])
        let error = try #require(throws: GeometryError.self) {
            try MaskAnalysis(layout: long, family: .full, queryBlock: 1, keyBlock: 1 << 21)
        }
        #expect(error.description.contains("per side"))
    }
}
