import STAGeometry

/// The sizes of one call, checked: q, k, v, the output and the gradients hold `elementCount` values,
/// lse holds `rowCount`.
public struct AttentionShape: Sendable, Equatable {
    /// The largest batch any backend takes.
    public static let batchLimit = 65_535
    /// The largest head dim any backend takes.
    public static let headDimLimit = 65_536

    /// B: sequences of one call.
    public let batch: Int
    /// H: the plan's heads.
    public let heads: Int
    /// S: the plan's sequence length (padded video tokens, then text).
    public let sequenceLength: Int
    /// D: the head dimension.
    public let headDim: Int
    /// B · H · S.
    public let rowCount: Int
    /// B · H · S · D.
    public let elementCount: Int

    /// Throws `invalidArgument` for a batch outside 1...65535, a head dim outside 1...65536, or sizes
    /// whose product overflows. Cost: O(1).
    public init(plan: AttentionPlan, batch: Int, headDim: Int) throws(AttentionError) {
        guard (1...Self.batchLimit).contains(batch) else {
            throw .invalidArgument("batch is \(batch); it must be in 1...\(Self.batchLimit)")
        }
        guard (1...Self.headDimLimit).contains(headDim) else {
            throw .invalidArgument("head_dim is \(headDim); it must be in 1...\(Self.headDimLimit)")
        }
        self.batch = batch
        self.heads = plan.heads
        self.sequenceLength = plan.layout.sequenceLength
        self.headDim = headDim
        rowCount = try Self.product([batch, plan.heads, plan.layout.sequenceLength], "batch × heads × S")
        elementCount = try Self.product([rowCount, headDim], "batch × heads × S × head_dim")
    }

    /// The product of `factors`, or `invalidArgument` naming `what` when it overflows `Int`.
    public static func product(_ factors: [Int], _ what: String) throws(AttentionError) -> Int {
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow else {
                throw .invalidArgument("\(what) (\(factors.map(String.init).joined(separator: " × "))) overflows a 64-bit size")
            }
            result = next
        }
        return result
    }

    /// Throws `invalidArgument` unless each named count equals `elementCount` (or `rowCount` for "lse").
    func check(_ counts: [(String, Int)]) throws(AttentionError) {
        for (name, count) in counts {
            let needed = name == "lse" ? rowCount : elementCount
            guard count == needed else {
                throw .invalidArgument(
                    "\(name) has \(count) elements; [B, H, S\(name == "lse" ? "" : ", D")] = [\(batch), \(heads), \(sequenceLength)"
                        + "\(name == "lse" ? "" : ", \(headDim)")] needs \(needed)")
            }
        }
    }
}

/// Per-row valid text lengths of a call, checked on the host: nil (the plan's `text.valid` for every row)
/// or one length in 0...text.count per batch row.
enum TextValidLengths {
    /// Throws `invalidArgument` unless `lengths` is nil or has `batch` entries in 0...`layout.text.count`.
    static func check(_ lengths: [Int]?, batch: Int, layout: STALayout) throws(AttentionError) {
        guard let lengths else { return }
        guard lengths.count == batch else {
            throw .invalidArgument("text_valid has \(lengths.count) entries; it needs one per batch row (\(batch))")
        }
        if let (row, value) = lengths.enumerated().first(where: { !(0...layout.text.count).contains($0.element) }) {
            throw .invalidArgument(
                "text_valid[\(row)] is \(value); each entry must be in 0...\(layout.text.count) (the plan's text count)")
        }
    }
}
