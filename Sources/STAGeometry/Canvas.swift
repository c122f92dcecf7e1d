/// The latent grid of video (or image) tokens: rank 1 (L), 2 (H, W) or 3 (T, H, W), in tokens.
public struct Canvas: Hashable, Sendable, CustomStringConvertible {
    /// Size of each axis in tokens, slowest-varying first.
    public let extents: [Int]

    /// Validates `extents`: rank 1...3, every size ≥ 1, at most `STALimits.maximumSequenceLength` tokens.
    public init(_ extents: [Int]) throws(GeometryError) {
        try Self.validate(extents, what: "canvas")
        self.extents = extents
    }

    public var rank: Int { extents.count }
    /// Number of real tokens, ∏ extents.
    public var tokenCount: Int { extents.reduce(1, *) }
    public var description: String { extents.map(String.init).joined(separator: "×") }

    /// Rank 1...3, every size ≥ 1, and at most `STALimits.maximumSequenceLength` tokens in all.
    static func validate(_ extents: [Int], what: String) throws(GeometryError) {
        guard (1...3).contains(extents.count) else { throw .invalidRank(what: what, rank: extents.count) }
        for (axis, value) in extents.enumerated() where value < 1 {
            throw .nonPositiveExtent(what: what, axis: axis, value: value)
        }
        _ = try STALimits.product(extents, "\(what) tokens", limit: STALimits.maximumSequenceLength)
    }
}

/// The shape of one tile in tokens, one size per canvas axis.
public struct TileShape: Hashable, Sendable, CustomStringConvertible {
    public let extents: [Int]

    public init(_ extents: [Int]) throws(GeometryError) {
        try Canvas.validate(extents, what: "tile")
        self.extents = extents
    }

    public var rank: Int { extents.count }
    /// Tokens in one tile, holes included.
    public var volume: Int { extents.reduce(1, *) }
    public var description: String { extents.map(String.init).joined(separator: "×") }
}

/// Text tokens that follow the video tokens (joint attention): `count` positions, of which the first
/// `valid` are real and the rest right padding. `count` is at most `STALimits.maximumSequenceLength`.
public struct TextTokens: Hashable, Sendable {
    public let count: Int
    public let valid: Int

    public static let none = TextTokens(uncheckedCount: 0, valid: 0)

    public init(count: Int, valid: Int? = nil) throws(GeometryError) {
        guard count >= 0 else { throw .negativeTextCount(count) }
        guard count <= STALimits.maximumSequenceLength else {
            throw .exceedsLimit(what: "text token count", value: String(count), limit: STALimits.maximumSequenceLength)
        }
        let valid = valid ?? count
        guard (0...count).contains(valid) else { throw .textValidOutOfRange(valid: valid, count: count) }
        self.count = count
        self.valid = valid
    }

    private init(uncheckedCount: Int, valid: Int) {
        self.count = uncheckedCount
        self.valid = valid
    }
}
