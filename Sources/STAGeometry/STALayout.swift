/// A canvas cut into tiles, plus the text tokens that follow it: everything that fixes where each token
/// lives in the tile-contiguous sequence.
///
/// Token index in the sequence = tileIndex · tileVolume + offsetInTile for video tokens (tileIndex
/// row-major over the tile grid, offsetInTile row-major inside the tile), then the text tokens. Axes that
/// the tile does not divide are padded up to whole tiles; the padded positions are *holes*.
public struct STALayout: Hashable, Sendable, CustomStringConvertible {
    public let canvas: Canvas
    public let tile: TileShape
    public let text: TextTokens
    /// Tiles per axis, ⌈canvas / tile⌉.
    public let tileGrid: [Int]

    /// Throws when the ranks differ, a tile axis exceeds its canvas axis, or the sequence (padded video
    /// tokens plus text) is longer than `STALimits.maximumSequenceLength`; so every count below is exact.
    public init(canvas: Canvas, tile: TileShape, text: TextTokens = .none) throws(GeometryError) {
        guard tile.rank == canvas.rank else {
            throw .rankMismatch(what: "tile \(tile)", expected: canvas.rank, actual: tile.rank)
        }
        for axis in 0..<canvas.rank where tile.extents[axis] > canvas.extents[axis] {
            throw .tileLargerThanCanvas(
                axis: axis, tileTokens: tile.extents[axis], canvasTokens: canvas.extents[axis])
        }
        // Each padded axis is below 2 · 2²⁷, so the sums cannot overflow; the product and the text are checked.
        let tileGrid = zip(canvas.extents, tile.extents).map { ($0 + $1 - 1) / $1 }
        let padded = try STALimits.product(
            zip(tileGrid, tile.extents).map { $0 * $1 }, "padded video tokens",
            limit: STALimits.maximumSequenceLength)
        _ = try STALimits.sum(padded, text.count, "sequence length (padded video + text tokens)",
            limit: STALimits.maximumSequenceLength)
        self.canvas = canvas
        self.tile = tile
        self.text = text
        self.tileGrid = tileGrid
    }

    /// Convenience: validates all three parts.
    public init(canvas: [Int], tile: [Int], textCount: Int = 0, textValid: Int? = nil) throws(GeometryError) {
        try self.init(
            canvas: Canvas(canvas), tile: TileShape(tile), text: TextTokens(count: textCount, valid: textValid))
    }

    public var rank: Int { canvas.rank }
    /// Number of tiles, ∏ tileGrid.
    public var tileCount: Int { tileGrid.reduce(1, *) }
    /// Tokens per tile, holes included.
    public var tileVolume: Int { tile.volume }
    /// Video positions in the sequence, holes included: tileCount · tileVolume.
    public var paddedVideoTokenCount: Int { tileCount * tileVolume }
    /// Real video tokens: ∏ canvas.
    public var videoTokenCount: Int { canvas.tokenCount }
    /// Sequence length S of a [B, H, S, D] tensor in tile order: padded video tokens then text.
    public var sequenceLength: Int { paddedVideoTokenCount + text.count }
    /// Whether the canvas needs padding (some tiles hold holes).
    public var hasHoles: Bool { paddedVideoTokenCount != videoTokenCount }

    public var description: String {
        "canvas \(canvas), tile \(tile), grid \(tileGrid.map(String.init).joined(separator: "×"))"
            + (text.count > 0 ? ", text \(text.valid)/\(text.count)" : "")
    }

    // MARK: Coordinates

    /// Row-major coordinates of tile `index` in the tile grid.
    public func tileCoordinates(ofTile index: Int) -> [Int] {
        unflatten(index, extents: tileGrid)
    }

    /// Index of the tile at grid coordinates `coordinates`.
    public func tileIndex(atTileCoordinates coordinates: [Int]) -> Int {
        flatten(coordinates, extents: tileGrid)
    }

    /// Sequence index of the video token at canvas position `position` (tokens, raster axes).
    public func sequenceIndex(ofCanvasPosition position: [Int]) -> Int {
        var tileCoordinates = [Int](repeating: 0, count: rank)
        var offset = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            tileCoordinates[axis] = position[axis] / tile.extents[axis]
            offset[axis] = position[axis] % tile.extents[axis]
        }
        return tileIndex(atTileCoordinates: tileCoordinates) * tileVolume + flatten(offset, extents: tile.extents)
    }

    /// Canvas position of the video token at sequence index `index`, or nil for a hole or a text token.
    public func canvasPosition(ofSequenceIndex index: Int) -> [Int]? {
        guard index >= 0, index < paddedVideoTokenCount else { return nil }
        let tileCoordinates = tileCoordinates(ofTile: index / tileVolume)
        let offset = unflatten(index % tileVolume, extents: tile.extents)
        var position = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            position[axis] = tileCoordinates[axis] * tile.extents[axis] + offset[axis]
            if position[axis] >= canvas.extents[axis] { return nil }
        }
        return position
    }

    /// Real (non-hole) tokens in tile `index`.
    public func realTokenCount(inTile index: Int) -> Int {
        let coordinates = tileCoordinates(ofTile: index)
        var count = 1
        for axis in 0..<rank {
            let start = coordinates[axis] * tile.extents[axis]
            count *= min(tile.extents[axis], canvas.extents[axis] - start)
        }
        return count
    }

    // MARK: Windows

    /// Validates `window` for this layout and returns it with every size clamped to at most its axis'
    /// tile count (so "whole axis" has one spelling).
    ///
    /// Throws when the rank differs, a size is below 1, or a size is even and smaller than its axis.
    public func resolve(_ window: Window) throws(GeometryError) -> Window {
        guard window.rank == rank else {
            throw .rankMismatch(what: "window \(window)", expected: rank, actual: window.rank)
        }
        var tiles = window.tiles
        for axis in 0..<rank {
            let size = tiles[axis]
            guard size >= 1 else { throw .nonPositiveExtent(what: "window", axis: axis, value: size) }
            if size >= tileGrid[axis] {
                tiles[axis] = tileGrid[axis]
            } else if size % 2 == 0 {
                throw .evenWindow(axis: axis, windowTiles: size, axisTiles: tileGrid[axis])
            }
        }
        return Window(tiles: tiles)
    }

    /// Converts a window given in tokens (the paper's (18, 24, 24)) to tiles and validates it.
    public func window(tokens: [Int]) throws(GeometryError) -> Window {
        guard tokens.count == rank else {
            throw .rankMismatch(what: "token window", expected: rank, actual: tokens.count)
        }
        var tiles = [Int]()
        for axis in 0..<rank {
            let size = tokens[axis]
            guard size >= 1 else { throw .nonPositiveExtent(what: "window", axis: axis, value: size) }
            guard size % tile.extents[axis] == 0 else {
                throw .windowNotTileMultiple(axis: axis, windowTokens: size, tileTokens: tile.extents[axis])
            }
            tiles.append(size / tile.extents[axis])
        }
        return try resolve(Window(tiles: tiles))
    }

    /// The key tiles along `axis` that query tile coordinate `queryTile` attends under a window of
    /// `windowTiles` (already resolved): the centre is clamped inward so the range always has
    /// `windowTiles` tiles.
    public func keyTileRange(axis: Int, queryTile: Int, windowTiles: Int) -> Range<Int> {
        let n = tileGrid[axis]
        if windowTiles >= n { return 0..<n }
        let radius = windowTiles / 2
        let centre = min(max(queryTile, radius), n - 1 - radius)
        return (centre - radius)..<(centre + radius + 1)
    }
}

func flatten(_ coordinates: [Int], extents: [Int]) -> Int {
    var index = 0
    for axis in 0..<extents.count { index = index * extents[axis] + coordinates[axis] }
    return index
}

func unflatten(_ index: Int, extents: [Int]) -> [Int] {
    var coordinates = [Int](repeating: 0, count: extents.count)
    var rest = index
    for axis in stride(from: extents.count - 1, through: 0, by: -1) {
        coordinates[axis] = rest % extents[axis]
        rest /= extents[axis]
    }
    return coordinates
}
