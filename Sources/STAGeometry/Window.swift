/// A sliding-tile window: per canvas axis, its size in tiles.
///
/// A size at least the axis' tile count means the whole axis. Otherwise the size must be odd; the window
/// of a query tile is centred on it, pushed inward at the borders so that every query tile sees the same
/// number of key tiles. Use `STALayout.resolve(_:)` to validate a window against a layout.
public struct Window: Hashable, Sendable, CustomStringConvertible {
    public let tiles: [Int]

    public init(tiles: [Int]) {
        self.tiles = tiles
    }

    public var rank: Int { tiles.count }
    public var tileCount: Int { tiles.reduce(1, *) }
    public var description: String { tiles.map(String.init).joined(separator: "x") }
}
