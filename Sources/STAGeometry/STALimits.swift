/// The largest sizes this package accepts, shared by the `sta` tool, the C interface and the Python
/// package (which keeps a copy of these numbers, checked against the table in docs/CLI.md by tests on
/// both sides).
///
/// Every size, count or product that comes from a caller is checked against these limits with
/// overflow-reporting arithmetic before anything is allocated, so a request beyond them is an error
/// naming the limit, never a trap or an allocation failure. The limits are far above any real video
/// model (a 720p HunyuanVideo clip is 115,200 tokens and 24 heads) and small enough that every table a
/// plan builds fits in memory and every extent fits the 32-bit indices of the CUDA kernels.
public enum STALimits {
    /// The longest sequence (padded video tokens plus text tokens) of a layout: 2²⁷ tokens, about a
    /// thousand 720p HunyuanVideo clips. Also bounds every canvas axis, tile axis and the text count.
    public static let maximumSequenceLength = 1 << 27
    /// The most (query tile, key tile) pairs a plan's key-tile lists may hold (4 bytes each, 1 GiB).
    public static let maximumKeyTileEntries = 1 << 28
    /// The most attention heads of a plan (a CUDA grid's y extent).
    public static let maximumHeads = 65_535
    /// The largest batch of one call (a CUDA grid's z extent).
    public static let maximumBatch = 65_535
    /// The largest head dimension D.
    public static let maximumHeadDim = 65_536
    /// The most elements of one [B, H, S, D] tensor the tool allocates from command-line sizes: 2³⁴
    /// (64 GiB in fp32).
    public static let maximumTensorElements = 1 << 34
    /// The most CPU worker threads.
    public static let maximumThreads = 4_096
    /// The largest side of a rendered picture, in pixels (a 8192 × 8192 RGB picture is 192 MiB).
    public static let maximumImageSide = 8_192
    /// The most diffusion steps a window search may keep full (`--full-steps`).
    public static let maximumSearchSteps = 100_000
    /// The most timed or warm-up repetitions of a benchmark.
    public static let maximumRepetitions = 1_000_000

    /// Every limit by the name docs/CLI.md and the Python package use for it.
    public static let table: [(name: String, value: Int)] = [
        ("sequence_length", maximumSequenceLength),
        ("key_tile_entries", maximumKeyTileEntries),
        ("heads", maximumHeads),
        ("batch", maximumBatch),
        ("head_dim", maximumHeadDim),
        ("tensor_elements", maximumTensorElements),
        ("threads", maximumThreads),
        ("image_side", maximumImageSide),
        ("search_steps", maximumSearchSteps),
        ("repetitions", maximumRepetitions),
    ]

    /// `value` when it lies in `minimum...maximum`; otherwise an error naming `what`, the value and the
    /// allowed range (the limit's name when `value` is above it).
    public static func check(_ value: Int, _ what: String, minimum: Int, maximum: Int) throws(GeometryError) -> Int {
        guard value >= minimum else {
            throw .belowMinimum(what: what, value: String(value), minimum: minimum)
        }
        guard value <= maximum else {
            throw .exceedsLimit(what: what, value: String(value), limit: maximum)
        }
        return value
    }

    /// The product of `factors`, or an error naming `what` and `limit` when it exceeds `limit` or
    /// overflows `Int` (factors must be ≥ 0).
    public static func product(_ factors: [Int], _ what: String, limit: Int) throws(GeometryError) -> Int {
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow, next <= limit else {
                throw .exceedsLimit(what: what, value: factors.map(String.init).joined(separator: " × "), limit: limit)
            }
            result = next
        }
        return result
    }

    /// `a + b`, or an error naming `what` and `limit` when it exceeds `limit` or overflows.
    public static func sum(_ a: Int, _ b: Int, _ what: String, limit: Int) throws(GeometryError) -> Int {
        let (result, overflow) = a.addingReportingOverflow(b)
        guard !overflow, result <= limit else { throw .exceedsLimit(what: what, value: "\(a) + \(b)", limit: limit) }
        return result
    }
}
