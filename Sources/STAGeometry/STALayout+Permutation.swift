extension STALayout {
    /// For every video position of the sequence (holes included), the raster index (row-major over the
    /// canvas) of its token, or -1 for a hole. Cost: O(paddedVideoTokenCount).
    public func rasterIndexBySequenceIndex() -> [Int32] {
        var map = [Int32](repeating: -1, count: paddedVideoTokenCount)
        let offsetsInTile = (0..<tileVolume).map { unflatten($0, extents: tile.extents) }
        for tileIndex in 0..<tileCount {
            let origin = zip(tileCoordinates(ofTile: tileIndex), tile.extents).map { $0 * $1 }
            for (offset, local) in offsetsInTile.enumerated() {
                var raster = 0
                var isHole = false
                for axis in 0..<rank {
                    let position = origin[axis] + local[axis]
                    if position >= canvas.extents[axis] { isHole = true; break }
                    raster = raster * canvas.extents[axis] + position
                }
                if !isHole { map[tileIndex * tileVolume + offset] = Int32(raster) }
            }
        }
        return map
    }

    /// Permutes a tensor laid out as [outer, videoTokenCount + text.count, inner] with its video tokens in
    /// raster order into [outer, sequenceLength, inner] in tile-contiguous order, writing `fill` into holes.
    ///
    /// `outer` and `inner` express any batch/head layout: [B, H, S, D] is outer B·H, inner D;
    /// [B, S, H, D] is outer B, inner H·D. Text tokens keep their order after the video tokens.
    public func tile<Element>(_ source: [Element], outer: Int, inner: Int, fill: Element) throws(GeometryError)
        -> [Element]
    {
        let rasterLength = videoTokenCount + text.count
        let expected = try Self.elementCount(outer: outer, tokens: rasterLength, inner: inner)
        guard source.count == expected else {
            throw .elementCountMismatch(what: "tensor to tile", expected: expected, actual: source.count)
        }
        let map = rasterIndexBySequenceIndex()
        var result = [Element](repeating: fill, count: outer * sequenceLength * inner)
        for o in 0..<outer {
            let sourceBase = o * rasterLength * inner
            let resultBase = o * sequenceLength * inner
            for (sequenceIndex, raster) in map.enumerated() where raster >= 0 {
                let s = sourceBase + Int(raster) * inner
                let r = resultBase + sequenceIndex * inner
                for i in 0..<inner { result[r + i] = source[s + i] }
            }
            for t in 0..<(text.count * inner) {
                result[resultBase + paddedVideoTokenCount * inner + t] = source[sourceBase + videoTokenCount * inner + t]
            }
        }
        return result
    }

    /// The exact inverse of `tile`: [outer, sequenceLength, inner] in tile order back to
    /// [outer, videoTokenCount + text.count, inner] in raster order; holes are dropped.
    public func untile<Element>(_ source: [Element], outer: Int, inner: Int) throws(GeometryError) -> [Element] {
        let expected = try Self.elementCount(outer: outer, tokens: sequenceLength, inner: inner)
        guard source.count == expected else {
            throw .elementCountMismatch(what: "tensor to untile", expected: expected, actual: source.count)
        }
        let rasterLength = videoTokenCount + text.count
        guard rasterLength > 0, outer > 0, inner > 0 else { return [] }
        let map = rasterIndexBySequenceIndex()
        var result = [Element]()
        result.reserveCapacity(outer * rasterLength * inner)
        // Fill with placeholders from the source, then overwrite every slot: no Element default needed.
        result.append(contentsOf: repeatElement(source[0], count: outer * rasterLength * inner))
        for o in 0..<outer {
            let sourceBase = o * sequenceLength * inner
            let resultBase = o * rasterLength * inner
            for (sequenceIndex, raster) in map.enumerated() where raster >= 0 {
                let s = sourceBase + sequenceIndex * inner
                let r = resultBase + Int(raster) * inner
                for i in 0..<inner { result[r + i] = source[s + i] }
            }
            for t in 0..<(text.count * inner) {
                result[resultBase + videoTokenCount * inner + t] = source[sourceBase + paddedVideoTokenCount * inner + t]
            }
        }
        return result
    }

    /// outer · tokens · inner, rejecting negative factors; a product that overflows `Int` saturates to
    /// `Int.max`, which no array count matches.
    private static func elementCount(outer: Int, tokens: Int, inner: Int) throws(GeometryError) -> Int {
        guard outer >= 0 else { throw .negativeDimension(what: "outer (batch/head) count", value: outer) }
        guard inner >= 0 else { throw .negativeDimension(what: "inner (per-token) element count", value: inner) }
        let (partial, overflow1) = outer.multipliedReportingOverflow(by: tokens)
        let (count, overflow2) = partial.multipliedReportingOverflow(by: inner)
        return overflow1 || overflow2 ? Int.max : count
    }
}
