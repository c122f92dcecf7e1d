import STAGeometry

/// A window per (denoising step, layer, head): what the search produces and what a model run reads.
///
/// Stored as FastVideo's flat JSON object `{"<step>_<layer>_<head>": [kt, kh, kw], ...}`, windows in
/// tiles (one size per canvas axis), e.g. 72,000 entries for 50 steps × 60 layers × 24 heads. See
/// `jsonText`, `init(jsonText:)`, `read(path:)` and `write(path:)`.
public struct MaskStrategy: Hashable, Sendable {
    /// One entry's position.
    public struct Key: Hashable, Comparable, Sendable, CustomStringConvertible {
        public let step: Int
        public let layer: Int
        public let head: Int

        public init(step: Int, layer: Int, head: Int) {
            self.step = step
            self.layer = layer
            self.head = head
        }

        public static func < (a: Key, b: Key) -> Bool { (a.step, a.layer, a.head) < (b.step, b.layer, b.head) }
        /// The JSON key, `"<step>_<layer>_<head>"`.
        public var description: String { "\(step)_\(layer)_\(head)" }
    }

    /// Windows per (step, layer), then per head.
    private var windowsByStepLayer: [StepLayer: [Int: Window]] = [:]

    /// An empty strategy.
    public init() {}

    /// The window of one head, nil when absent. Setting nil removes the entry.
    public subscript(step step: Int, layer layer: Int, head head: Int) -> Window? {
        get { windowsByStepLayer[StepLayer(step: step, layer: layer)]?[head] }
        set {
            let key = StepLayer(step: step, layer: layer)
            windowsByStepLayer[key, default: [:]][head] = newValue
            if windowsByStepLayer[key]?.isEmpty == true { windowsByStepLayer[key] = nil }
        }
    }

    /// Number of entries.
    public var count: Int { windowsByStepLayer.values.reduce(0) { $0 + $1.count } }

    /// Every entry, sorted by step, layer, head. Cost: O(n log n).
    public var entries: [(key: Key, window: Window)] {
        windowsByStepLayer.flatMap { stepLayer, heads in
            heads.map { (Key(step: stepLayer.step, layer: stepLayer.layer, head: $0.key), $0.value) }
        }.sorted { $0.key < $1.key }
    }

    /// The (step, layer) pairs that have entries, sorted.
    public var stepLayers: [StepLayer] { windowsByStepLayer.keys.sorted() }

    /// The windows of heads 0..<n of one (step, layer), for `AttentionPlan(layout:headWindows:)`.
    /// Throws when the pair has no entries or its heads are not exactly 0..<n.
    public func windows(step: Int, layer: Int) throws(WindowSearchError) -> [Window] {
        guard let heads = windowsByStepLayer[StepLayer(step: step, layer: layer)] else {
            throw .missingStrategyEntry(step: step, layer: layer, reason: "no entry \"\(step)_\(layer)_0\"")
        }
        var windows = [Window]()
        for head in 0..<heads.count {
            guard let window = heads[head] else {
                throw .missingStrategyEntry(
                    step: step, layer: layer,
                    reason: "\(heads.count) heads are listed but head \(head) is missing (heads must be 0..<n)")
            }
            windows.append(window)
        }
        return windows
    }
}
