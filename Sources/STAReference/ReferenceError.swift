import STATensors

/// Why a reference attention call was rejected. Each case's `description` names what was wrong and what
/// is allowed.
public enum ReferenceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A size is below 1 (batch, heads, key/value heads, sequence length or head dim).
    case nonPositiveSize(name: String, value: Int)
    /// The query heads are not a multiple of the key/value heads.
    case headsNotMultipleOfKeyValueHeads(heads: Int, keyValueHeads: Int)
    /// An input holds the wrong number of elements for [batch, heads, sequenceLength, headDim].
    case elementCountMismatch(input: String, expected: Int, actual: Int)
    /// An input tensor's shape is not the expected [B, H, S, D].
    case shapeMismatch(input: String, expected: [Int], actual: [Int])
    /// The plan was built for a different number of query heads.
    case planHeadCountMismatch(planHeads: Int, heads: Int)
    /// The scale is not finite.
    case nonFiniteScale(Double)
    /// An input tensor could not be read.
    case tensor(TensorError)
    /// The per-row valid text lengths do not have one entry per batch row.
    case textValidCountMismatch(count: Int, batch: Int)
    /// A per-row valid text length is outside 0...text token count.
    case textValidOutOfRange(row: Int, value: Int, textCount: Int)
    /// A sampled row index is outside the sequence.
    case rowOutOfRange(row: Int, sequenceLength: Int)

    public var description: String {
        switch self {
        case let .nonPositiveSize(name, value):
            return "\(name) is \(value); it must be at least 1"
        case let .headsNotMultipleOfKeyValueHeads(heads, keyValueHeads):
            return "\(heads) query heads are not a multiple of \(keyValueHeads) key/value heads; "
                + "grouped-query attention needs heads = group size · keyValueHeads"
        case let .elementCountMismatch(input, expected, actual):
            return "\(input) has \(actual) elements; [batch, heads, sequenceLength, headDim] needs \(expected)"
        case let .shapeMismatch(input, expected, actual):
            return "\(input) has shape \(actual); expected \(expected) ([batch, heads, sequenceLength, headDim])"
        case let .planHeadCountMismatch(planHeads, heads):
            return "the plan has \(planHeads) heads but the query has \(heads); build the plan for every query head"
        case let .nonFiniteScale(scale):
            return "scale \(scale) is not finite; pass a finite scale or nil for 1/√headDim"
        case let .tensor(error):
            return error.description
        case let .textValidCountMismatch(count, batch):
            return "textValid has \(count) entries; it needs one valid text length per batch row (\(batch))"
        case let .textValidOutOfRange(row, value, textCount):
            return "textValid[\(row)] is \(value); a valid text length must be in 0...\(textCount) (the text token count)"
        case let .rowOutOfRange(row, sequenceLength):
            return "sampled row \(row) is outside the sequence; rows must be in 0..<\(sequenceLength)"
        }
    }
}
