/// Why a canvas, tile, window or text set-up was rejected. Each case's `description` names what was
/// wrong and what is allowed.
public enum GeometryError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidRank(what: String, rank: Int)
    case rankMismatch(what: String, expected: Int, actual: Int)
    case nonPositiveExtent(what: String, axis: Int, value: Int)
    case tileLargerThanCanvas(axis: Int, tileTokens: Int, canvasTokens: Int)
    case evenWindow(axis: Int, windowTiles: Int, axisTiles: Int)
    case windowNotTileMultiple(axis: Int, windowTokens: Int, tileTokens: Int)
    case negativeTextCount(Int)
    case textValidOutOfRange(valid: Int, count: Int)
    case headCountMismatch(expected: Int, actual: Int)
    case noHeads
    case elementCountMismatch(what: String, expected: Int, actual: Int)
    case negativeDimension(what: String, value: Int)
    case windowLargerThanCanvas(axis: Int, windowTokens: Int, canvasTokens: Int)
    case evenTokenWindow(axis: Int, windowTokens: Int, canvasTokens: Int)
    case nonPositiveBlockSize(what: String, tokens: Int)
    case blockGridTooLarge(rows: Int, columns: Int, limit: Int)
    /// A size or count above one of `STALimits` (or a product that overflows); `value` as the caller wrote it.
    case exceedsLimit(what: String, value: String, limit: Int)
    /// A size or count below its smallest allowed value.
    case belowMinimum(what: String, value: String, minimum: Int)

    public var description: String {
        switch self {
        case let .invalidRank(what, rank):
            return "\(what) has rank \(rank); allowed ranks are 1, 2 and 3 (T×H×W, H×W or L)"
        case let .rankMismatch(what, expected, actual):
            return "\(what) has \(actual) axes but the canvas has \(expected); give one size per canvas axis"
        case let .nonPositiveExtent(what, axis, value):
            return "\(what) axis \(axis) is \(value); every size must be at least 1"
        case let .tileLargerThanCanvas(axis, tile, canvas):
            return "tile axis \(axis) is \(tile) tokens but the canvas axis is only \(canvas); a tile may be at most the canvas size"
        case let .evenWindow(axis, window, axisTiles):
            return "window axis \(axis) is \(window) tiles, even and smaller than the \(axisTiles) tiles of the axis; "
                + "a window must be odd, or at least the whole axis (≥ \(axisTiles))"
        case let .windowNotTileMultiple(axis, window, tile):
            return "window axis \(axis) is \(window) tokens, not a multiple of the tile's \(tile) tokens; "
                + "token windows must be whole tiles (e.g. \(tile * 3))"
        case let .negativeTextCount(count):
            return "text token count is \(count); it must be 0 or more"
        case let .textValidOutOfRange(valid, count):
            return "valid text length \(valid) is outside 0...\(count) (the text token count)"
        case let .headCountMismatch(expected, actual):
            return "\(actual) per-head windows were given for \(expected) heads; give one window, or one per head"
        case .noHeads:
            return "head count must be at least 1"
        case let .elementCountMismatch(what, expected, actual):
            return "\(what) has \(actual) elements; this layout needs \(expected)"
        case let .negativeDimension(what, value):
            return "\(what) is \(value); it must be 0 or more"
        case let .windowLargerThanCanvas(axis, window, canvas):
            return "window axis \(axis) is \(window) tokens but the canvas axis is only \(canvas); "
                + "a token window must be 1...\(canvas) (\(canvas) means the whole axis)"
        case let .evenTokenWindow(axis, window, canvas):
            return "window axis \(axis) is \(window) tokens, even and smaller than the \(canvas) tokens of the axis; "
                + "a neighbourhood window must be odd, or exactly the whole axis (\(canvas))"
        case let .nonPositiveBlockSize(what, tokens):
            return "\(what) is \(tokens) tokens; a kernel block must be at least 1 token"
        case let .blockGridTooLarge(rows, columns, limit):
            return "a block grid of \(rows)×\(columns) blocks is too large to classify; at most \(limit) blocks, "
                + "and \(MaskAnalysis.maximumBlocksPerSide) per side, are allowed: use larger query or key blocks"
        case let .exceedsLimit(what, value, limit):
            return "\(what) is \(value), which exceeds the limit of \(limit) (see the limits in docs/CLI.md)"
        case let .belowMinimum(what, value, minimum):
            return "\(what) is \(value); it must be " + (minimum == 0 ? "0 or more" : "at least \(minimum)")
        }
    }
}
