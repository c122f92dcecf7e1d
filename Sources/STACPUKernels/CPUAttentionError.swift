import STAGeometry

/// Why `CPUAttention` rejected a call. Each case's `description` names what was wrong and what is allowed.
public enum CPUAttentionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The batch size is below 1.
    case invalidBatch(Int)
    /// The head dimension is below 1.
    case invalidHeadDimension(Int)
    /// The requested thread count is below 1.
    case invalidThreadCount(Int)
    /// The softmax scale is NaN or infinite.
    case nonFiniteScale(Float)
    /// A buffer does not hold exactly the elements the plan, batch and head dimension need.
    case elementCountMismatch(what: String, expected: Int, actual: Int)
    /// The dense entry's shape could not be turned into a layout.
    case geometry(GeometryError)
    /// The per-row valid text lengths do not have one entry per batch row.
    case textValidCountMismatch(count: Int, batch: Int)
    /// A per-row valid text length is outside 0...text token count.
    case textValidOutOfRange(row: Int, value: Int, textCount: Int)

    public var description: String {
        switch self {
        case let .invalidBatch(batch):
            return "batch is \(batch); it must be at least 1"
        case let .invalidHeadDimension(headDim):
            return "head dimension is \(headDim); it must be at least 1"
        case let .invalidThreadCount(threads):
            return "thread count is \(threads); give at least 1, or nil for every core"
        case let .nonFiniteScale(scale):
            return "softmax scale is \(scale); it must be finite (nil means 1/sqrt(headDim))"
        case let .elementCountMismatch(what, expected, actual):
            return "\(what) has \(actual) elements; batch × heads × sequence length"
                + (what == "lse" ? "" : " × head dimension") + " = \(expected) are needed"
        case let .geometry(error):
            return error.description
        case let .textValidCountMismatch(count, batch):
            return "textValid has \(count) entries; it needs one valid text length per batch row (\(batch))"
        case let .textValidOutOfRange(row, value, textCount):
            return "textValid[\(row)] is \(value); a valid text length must be in 0...\(textCount) (the text token count)"
        }
    }
}
