/// A box of real canvas tokens in rank-3 normal form: `lower.a ..< upper.a` on each axis a.
struct TokenBox: Sendable {
    var lower0, lower1, lower2: Int
    var upper0, upper1, upper2: Int

    var volume: Int { (upper0 - lower0) * (upper1 - lower1) * (upper2 - lower2) }
}

/// Cuts runs of sequence positions into boxes of real canvas tokens, in rank-3 normal form.
///
/// A run of row-major indices over a box of extents E is the union of at most 2·rank − 1 boxes (a partial
/// first slice, whole slices, a partial last slice, recursively). A run of tile-order positions is a
/// partial first tile, a run of whole tiles (a row-major run over the tile grid) and a partial last tile,
/// so at most 3 · 5 boxes; holes are clipped away.
struct BlockBoxes {
    let canvas: [Int]
    let tile: [Int]
    let tileGrid: [Int]
    let tileVolume: Int

    init(layout: STALayout) {
        let pad = Array(repeating: 1, count: 3 - layout.rank)
        canvas = pad + layout.canvas.extents
        tile = pad + layout.tile.extents
        tileGrid = pad + layout.tileGrid
        tileVolume = layout.tileVolume
    }

    /// Boxes of the raster positions `start ..< end` (row-major over the canvas).
    func rasterBoxes(_ start: Int, _ end: Int, into boxes: inout [TokenBox]) {
        var emitter = Emitter(scale: [1, 1, 1], origin: [0, 0, 0], limit: canvas)
        emitter.rowMajor(start, end, extents: canvas, into: &boxes)
    }

    /// Boxes of the real tokens at tile-order positions `start ..< end` (holes dropped).
    func tileOrderBoxes(_ start: Int, _ end: Int, into boxes: inout [TokenBox]) {
        guard start < end else { return }
        var position = start
        let firstTile = start / tileVolume
        if start % tileVolume != 0 || end < (firstTile + 1) * tileVolume {
            let stop = min(end, (firstTile + 1) * tileVolume)
            partialTile(firstTile, position - firstTile * tileVolume, stop - firstTile * tileVolume, into: &boxes)
            position = stop
        }
        let wholeStart = position / tileVolume
        let wholeEnd = end / tileVolume
        if position < end && wholeEnd > wholeStart {
            var emitter = Emitter(scale: tile, origin: [0, 0, 0], limit: canvas)
            emitter.rowMajor(wholeStart, wholeEnd, extents: tileGrid, into: &boxes)
            position = wholeEnd * tileVolume
        }
        if position < end {
            partialTile(position / tileVolume, 0, end - position, into: &boxes)
        }
    }

    private func partialTile(_ index: Int, _ start: Int, _ end: Int, into boxes: inout [TokenBox]) {
        let coordinates = unflatten(index, extents: tileGrid)
        let origin = (0..<3).map { coordinates[$0] * tile[$0] }
        var emitter = Emitter(scale: [1, 1, 1], origin: origin, limit: canvas)
        emitter.rowMajor(start, end, extents: tile, into: &boxes)
    }

    /// Turns boxes of row-major cells into token boxes: token = origin + cell · scale, clipped to `limit`.
    private struct Emitter {
        let scale: [Int]
        let origin: [Int]
        let limit: [Int]
        var lower = [0, 0, 0]
        var upper = [1, 1, 1]

        init(scale: [Int], origin: [Int], limit: [Int]) {
            self.scale = scale
            self.origin = origin
            self.limit = limit
        }

        mutating func rowMajor(_ start: Int, _ end: Int, extents: [Int], into boxes: inout [TokenBox]) {
            split(start, end, axis: 0, extents: extents, into: &boxes)
        }

        /// `start ..< end` indexes the row-major cells of axes `axis...2`; axes before are fixed in
        /// `lower`/`upper`.
        private mutating func split(_ start: Int, _ end: Int, axis: Int, extents: [Int], into boxes: inout [TokenBox]) {
            guard start < end else { return }
            if axis == 2 {
                lower[2] = start
                upper[2] = end
                emit(into: &boxes)
                return
            }
            let inner = axis == 0 ? extents[1] * extents[2] : extents[2]
            let (firstSlice, firstRest) = start.quotientAndRemainder(dividingBy: inner)
            let (lastSlice, lastRest) = end.quotientAndRemainder(dividingBy: inner)
            if firstSlice == lastSlice {
                lower[axis] = firstSlice
                upper[axis] = firstSlice + 1
                split(firstRest, lastRest, axis: axis + 1, extents: extents, into: &boxes)
                return
            }
            var wholeStart = firstSlice
            if firstRest != 0 {
                lower[axis] = firstSlice
                upper[axis] = firstSlice + 1
                split(firstRest, inner, axis: axis + 1, extents: extents, into: &boxes)
                wholeStart += 1
            }
            if lastSlice > wholeStart {
                lower[axis] = wholeStart
                upper[axis] = lastSlice
                for a in (axis + 1)..<3 {
                    lower[a] = 0
                    upper[a] = extents[a]
                }
                emit(into: &boxes)
            }
            if lastRest != 0 {
                lower[axis] = lastSlice
                upper[axis] = lastSlice + 1
                split(0, lastRest, axis: axis + 1, extents: extents, into: &boxes)
            }
        }

        private func emit(into boxes: inout [TokenBox]) {
            var l = [0, 0, 0]
            var u = [0, 0, 0]
            for a in 0..<3 {
                l[a] = min(origin[a] + lower[a] * scale[a], limit[a])
                u[a] = min(origin[a] + upper[a] * scale[a], limit[a])
                if l[a] >= u[a] { return }
            }
            boxes.append(TokenBox(lower0: l[0], lower1: l[1], lower2: l[2], upper0: u[0], upper1: u[1], upper2: u[2]))
        }
    }
}
