import Testing

@testable import STAGeometry

/// Every bad input gets its typed error, and the description names the allowed values.
@Suite("Geometry errors")
struct GeometryErrorTests {
    @Test func canvasRank() {
        #expect(throws: GeometryError.invalidRank(what: "canvas", rank: 0)) { try Canvas([]) }
        #expect(throws: GeometryError.invalidRank(what: "canvas", rank: 4)) { try Canvas([2, 2, 2, 2]) }
        #expect(throws: GeometryError.invalidRank(what: "tile", rank: 4)) { try TileShape([1, 1, 1, 1]) }
        #expect(GeometryError.invalidRank(what: "canvas", rank: 4).description.contains("1, 2 and 3"))
    }

    @Test func nonPositiveExtents() {
        #expect(throws: GeometryError.nonPositiveExtent(what: "canvas", axis: 1, value: 0)) { try Canvas([3, 0, 2]) }
        #expect(throws: GeometryError.nonPositiveExtent(what: "canvas", axis: 0, value: -4)) { try Canvas([-4]) }
        #expect(throws: GeometryError.nonPositiveExtent(what: "tile", axis: 2, value: -1)) {
            try STALayout(canvas: [4, 4, 4], tile: [2, 2, -1])
        }
        #expect(GeometryError.nonPositiveExtent(what: "tile", axis: 2, value: -1).description.contains("at least 1"))
    }

    @Test func tileAgainstCanvas() {
        #expect(throws: GeometryError.rankMismatch(what: "tile 2×2", expected: 3, actual: 2)) {
            try STALayout(canvas: [4, 4, 4], tile: [2, 2])
        }
        #expect(throws: GeometryError.tileLargerThanCanvas(axis: 1, tileTokens: 8, canvasTokens: 5)) {
            try STALayout(canvas: [4, 5], tile: [2, 8])
        }
        let rank = GeometryError.rankMismatch(what: "tile 2×2", expected: 3, actual: 2).description
        #expect(rank.contains("one size per canvas axis") && rank.contains("3"))
        #expect(GeometryError.tileLargerThanCanvas(axis: 1, tileTokens: 8, canvasTokens: 5).description.contains("at most"))
    }

    @Test func windows() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8])  // grid 5×6×10
        #expect(throws: GeometryError.evenWindow(axis: 2, windowTiles: 4, axisTiles: 10)) {
            try layout.resolve(Window(tiles: [3, 3, 4]))
        }
        // An even size reaching the axis is the whole axis.
        #expect(try layout.resolve(Window(tiles: [6, 6, 12])) == Window(tiles: [5, 6, 10]))
        #expect(try layout.resolve(Window(tiles: [1, 7, 9])) == Window(tiles: [1, 6, 9]))
        #expect(throws: GeometryError.rankMismatch(what: "window 3x3", expected: 3, actual: 2)) {
            try layout.resolve(Window(tiles: [3, 3]))
        }
        #expect(throws: GeometryError.nonPositiveExtent(what: "window", axis: 0, value: 0)) {
            try layout.resolve(Window(tiles: [0, 3, 3]))
        }
        #expect(throws: GeometryError.windowNotTileMultiple(axis: 1, windowTokens: 20, tileTokens: 8)) {
            try layout.window(tokens: [18, 20, 24])
        }
        #expect(throws: GeometryError.rankMismatch(what: "token window", expected: 3, actual: 1)) {
            try layout.window(tokens: [18])
        }
        #expect(try layout.window(tokens: [18, 24, 24]) == Window(tiles: [3, 3, 3]))
        let even = GeometryError.evenWindow(axis: 2, windowTiles: 4, axisTiles: 10).description
        #expect(even.contains("odd") && even.contains("≥ 10"))
        #expect(GeometryError.windowNotTileMultiple(axis: 1, windowTokens: 20, tileTokens: 8).description.contains("multiple of"))
        // Plans surface the same errors.
        #expect(throws: GeometryError.evenWindow(axis: 0, windowTiles: 2, axisTiles: 5)) {
            try AttentionPlan(layout: layout, headWindows: [Window(tiles: [3, 3, 3]), Window(tiles: [2, 1, 1])])
        }
    }

    @Test func text() {
        #expect(throws: GeometryError.textValidOutOfRange(valid: 5, count: 4)) { try TextTokens(count: 4, valid: 5) }
        #expect(throws: GeometryError.textValidOutOfRange(valid: -1, count: 4)) { try TextTokens(count: 4, valid: -1) }
        #expect(throws: GeometryError.negativeTextCount(-2)) { try TextTokens(count: -2) }
        #expect(throws: GeometryError.negativeTextCount(-2)) {
            try STALayout(canvas: [4], tile: [2], textCount: -2)
        }
        #expect(GeometryError.textValidOutOfRange(valid: 5, count: 4).description.contains("0...4"))
        #expect(GeometryError.negativeTextCount(-2).description.contains("0 or more"))
    }

    @Test func heads() throws {
        let layout = try STALayout(canvas: [8, 8], tile: [2, 2])
        #expect(throws: GeometryError.noHeads) { try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 0) }
        #expect(throws: GeometryError.noHeads) { try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: -3) }
        #expect(throws: GeometryError.noHeads) { try AttentionPlan(layout: layout, headWindows: []) }
        #expect(GeometryError.noHeads.description.contains("at least 1"))
    }
}
