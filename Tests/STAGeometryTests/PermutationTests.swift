import Testing

@testable import STAGeometry

@Suite("tile / untile")
struct PermutationTests {
    /// Random rank 1–3 layouts with padding, text, and outer/inner > 1.
    @Test(arguments: 0..<40)
    func roundTripAndPlacement(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 7919 &+ 1)
        let rank = Int.random(in: 1...3, using: &rng)
        let canvas = (0..<rank).map { _ in Int.random(in: 1...9, using: &rng) }
        let tile = canvas.map { Int.random(in: 1...$0, using: &rng) }
        let textCount = Int.random(in: 0...4, using: &rng)
        let textValid = Int.random(in: 0...textCount, using: &rng)
        let outer = Int.random(in: 1...3, using: &rng)
        let inner = Int.random(in: 1...3, using: &rng)
        let layout = try STALayout(canvas: canvas, tile: tile, textCount: textCount, textValid: textValid)
        let brute = BruteGeometry(canvas: canvas, tile: tile, textCount: textCount, textValid: textValid)
        #expect(layout.sequenceLength == brute.sequenceLength)

        let rasterLength = brute.video + textCount
        let source = Array(0..<(outer * rasterLength * inner))
        let tiled = try layout.tile(source, outer: outer, inner: inner, fill: -1)
        #expect(tiled.count == outer * brute.sequenceLength * inner)
        #expect(try layout.untile(tiled, outer: outer, inner: inner) == source)

        // Every position holds the raster element the spec puts there, holes hold `fill`.
        var holes = 0
        for o in 0..<outer {
            for s in 0..<brute.sequenceLength {
                let expectedRaster: Int?
                if s < brute.paddedVideo {
                    expectedRaster = brute.position(tileOrder: s).map { BruteGeometry.index($0, canvas) }
                } else {
                    expectedRaster = brute.video + (s - brute.paddedVideo)
                }
                if o == 0 && expectedRaster == nil { holes += 1 }
                for i in 0..<inner {
                    let value = tiled[(o * brute.sequenceLength + s) * inner + i]
                    if let raster = expectedRaster {
                        #expect(value == (o * rasterLength + raster) * inner + i)
                    } else {
                        #expect(value == -1)
                    }
                }
            }
        }
        #expect(holes == brute.paddedVideo - brute.video)
        // Apart from the holes, a permutation.
        #expect(tiled.filter { $0 >= 0 }.sorted() == source)
        #expect(tiled.count(where: { $0 < 0 }) == outer * holes * inner)
    }

    @Test func rasterMapMatchesSequenceIndex() throws {
        let layout = try STALayout(canvas: [5, 7, 3], tile: [2, 3, 2])
        let map = layout.rasterIndexBySequenceIndex()
        for (s, raster) in map.enumerated() {
            if let position = layout.canvasPosition(ofSequenceIndex: s) {
                #expect(Int(raster) == BruteGeometry.index(position, [5, 7, 3]))
                #expect(layout.sequenceIndex(ofCanvasPosition: position) == s)
            } else {
                #expect(raster == -1)
            }
        }
    }

    @Test func elementCountMismatch() throws {
        let layout = try STALayout(canvas: [5, 6], tile: [2, 3], textCount: 2)
        // Raster length 32, tile-order length 38.
        #expect(throws: GeometryError.elementCountMismatch(what: "tensor to tile", expected: 64, actual: 63)) {
            try layout.tile([Float](repeating: 0, count: 63), outer: 2, inner: 1, fill: 0)
        }
        #expect(throws: GeometryError.elementCountMismatch(what: "tensor to untile", expected: 76, actual: 64)) {
            try layout.untile([Float](repeating: 0, count: 64), outer: 2, inner: 1)
        }
        let error = GeometryError.elementCountMismatch(what: "tensor to tile", expected: 64, actual: 63)
        #expect(error.description.contains("63") && error.description.contains("needs 64"))
    }

    @Test func negativeOuterOrInnerIsRejected() throws {
        let layout = try STALayout(canvas: [4], tile: [2])
        // (-1) · 4 · (-1) = 4 would match the element count: must still be rejected, not trap.
        #expect(throws: GeometryError.negativeDimension(what: "outer (batch/head) count", value: -1)) {
            try layout.tile([1, 2, 3, 4], outer: -1, inner: -1, fill: 0)
        }
        #expect(throws: GeometryError.negativeDimension(what: "inner (per-token) element count", value: -1)) {
            try layout.untile([1, 2, 3, 4], outer: 1, inner: -1)
        }
        #expect(GeometryError.negativeDimension(what: "outer", value: -1).description.contains("0 or more"))
        // Empty tensors are fine.
        #expect(try layout.tile([Int](), outer: 0, inner: 3, fill: 0).isEmpty)
        #expect(try layout.untile([Int](), outer: 2, inner: 0).isEmpty)
    }
}
