import Dispatch
import Glibc
import STAGeometry
import STATensors

/// The float64 reference attention of spec §3, which every backend is checked against.
///
/// For every (batch, head, query row) it computes
/// `O = Σ_k softmax_k(scale · q·k) v_k` over the keys the row may attend, and
/// `lse = log Σ_k exp(scale · q·k)` (natural log), in `Double` with the max-subtraction trick.
///
/// Layout: `q` is [batch, heads, sequenceLength, headDim] and `k`, `v` are
/// [batch, keyValueHeads, sequenceLength, headDim], contiguous row-major. Query head `h` reads key/value
/// head `h / (heads / keyValueHeads)` (grouped-query attention; `keyValueHeads` defaults to `heads`).
/// `output` has q's layout and `lse` is [batch, heads, sequenceLength].
///
/// **Rows that attend no key** (holes of a padded canvas, padding text queries, or any row a predicate
/// leaves empty): the output row is 0 and the lse is −∞. Backends may leave such rows unspecified; compare
/// with a row mask (`realQueryMask(layout:)`).
///
/// **Non-finite values** (docs/SEMANTICS.md): a row whose result is not finite — NaN or ±∞ in its q row,
/// NaN in an attended k row, ±∞ in an attended v row, or ±∞ in an attended k row unless that key's score
/// is exactly −∞ (weight 0) — gets NaN in every output element and in its lse.
///
/// Inputs of a storage type (f32, f16, bf16) are converted to `Double` exactly.
public enum ReferenceAttention {
    public typealias Result = (output: [Double], lse: [Double])

    // MARK: Predicate

    /// Attention where query `query` of head `head` attends key `key` iff `allows(head, query, key)`.
    ///
    /// Cost: batch · heads · S² predicate calls plus 4 · D flops per allowed pair; meant for small S.
    public static func forward(
        q: [Double], k: [Double], v: [Double],
        batch: Int, heads: Int, keyValueHeads: Int? = nil, sequenceLength: Int, headDim: Int,
        scale: Double? = nil,
        allows: (_ head: Int, _ query: Int, _ key: Int) -> Bool
    ) throws(ReferenceError) -> Result {
        let problem = try Problem(
            q: q, k: k, v: v, batch: batch, heads: heads, keyValueHeads: keyValueHeads,
            sequenceLength: sequenceLength, headDim: headDim, scale: scale)
        return withoutActuallyEscaping(allows) { allows in
            var keys = [Int]()
            return problem.run(queryRows: nil, threads: 1) {
                { _, head, query in
                    keys.removeAll(keepingCapacity: true)
                    for key in 0..<sequenceLength where allows(head, query, key) { keys.append(key) }
                    return keys
                }
            }
        }
    }

    /// The predicate form for storage-type inputs (converted to `Double` exactly).
    public static func forward<T: StorageScalar>(
        q: [T], k: [T], v: [T],
        batch: Int, heads: Int, keyValueHeads: Int? = nil, sequenceLength: Int, headDim: Int,
        scale: Double? = nil,
        allows: (_ head: Int, _ query: Int, _ key: Int) -> Bool
    ) throws(ReferenceError) -> Result {
        try forward(
            q: q.map(\.doubleValue), k: k.map(\.doubleValue), v: v.map(\.doubleValue),
            batch: batch, heads: heads, keyValueHeads: keyValueHeads, sequenceLength: sequenceLength,
            headDim: headDim, scale: scale, allows: allows)
    }

    // MARK: Plan

    /// STA attention under `plan`: the same function as the predicate form with `plan.allows`, but each
    /// query tile gathers the real tokens of its key tiles (plus the valid text keys) once, so the cost
    /// is 4 · D flops per attended pair rather than S² predicate calls. `sequenceLength` is
    /// `plan.layout.sequenceLength` and `heads` is `plan.heads`.
    ///
    /// With `queryRows` (ascending sequence indices), only those rows of every (batch, head) are computed;
    /// the others are left as 0 and −∞ — a sampled check of a problem too large to reference whole.
    /// (batch, head) pairs run in parallel on all cores.
    ///
    /// `textValid` gives each batch row its own valid text length (`batch` entries in
    /// 0...layout.text.count); nil means `layout.text.valid` for every row. A row's text positions at or
    /// past its length are padding: they attend nothing (output 0, lse −∞) and are never attended.
    public static func forward(
        q: [Double], k: [Double], v: [Double],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil, queryRows: [Int]? = nil
    ) throws(ReferenceError) -> Result {
        let layout = plan.layout
        let problem = try Problem(
            q: q, k: k, v: v, batch: batch, heads: plan.heads, keyValueHeads: keyValueHeads,
            sequenceLength: layout.sequenceLength, headDim: headDim, scale: scale)
        let textValid = try validatedTextValid(textValid, batch: batch, layout: layout)
        let keySets = PlanKeySets(plan: plan)
        return problem.run(queryRows: queryRows, threads: nil) {
            // Consecutive queries of one tile (or all text queries) share a key list under one window.
            var cached: (text: Int, window: Int32, tile: Int)? = nil
            var keys = [Int]()
            return { b, head, query in
                let text = textValid[b]
                guard keySets.isReal(query, textValid: text) else { return [] }
                let window = plan.windowIndexByHead[head]
                let tile = keySets.tile(ofQuery: query)
                if cached?.text != text || cached?.window != window || cached?.tile != tile {
                    keySets.keys(head: head, tile: tile, textValid: text, into: &keys)
                    cached = (text, window, tile)
                }
                return keys
            }
        }
    }

    /// `textValid` checked against `batch` and the layout's text count, or the layout's default for every
    /// row when nil.
    static func validatedTextValid(_ textValid: [Int]?, batch: Int, layout: STALayout) throws(ReferenceError) -> [Int] {
        guard let textValid else { return Array(repeating: layout.text.valid, count: max(0, batch)) }
        guard textValid.count == batch else { throw .textValidCountMismatch(count: textValid.count, batch: batch) }
        if let row = textValid.firstIndex(where: { !(0...layout.text.count).contains($0) }) {
            throw .textValidOutOfRange(row: row, value: textValid[row], textCount: layout.text.count)
        }
        return textValid
    }

    /// The plan form for storage-type inputs (converted to `Double` exactly).
    public static func forward<T: StorageScalar>(
        q: [T], k: [T], v: [T],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil, queryRows: [Int]? = nil
    ) throws(ReferenceError) -> Result {
        try forward(
            q: q.map(\.doubleValue), k: k.map(\.doubleValue), v: v.map(\.doubleValue),
            batch: batch, headDim: headDim, plan: plan, keyValueHeads: keyValueHeads, scale: scale,
            textValid: textValid, queryRows: queryRows)
    }

    /// The plan form for host tensors of any dtype: `q` is [B, H, S, D] and `k`, `v` are
    /// [B, H_kv, S, D] with H = `plan.heads`, S = `plan.layout.sequenceLength`.
    public static func forward(
        q: HostTensor, k: HostTensor, v: HostTensor, plan: AttentionPlan, scale: Double? = nil,
        textValid: [Int]? = nil
    ) throws(ReferenceError) -> Result {
        guard q.rank == 4 else {
            throw .shapeMismatch(input: "q", expected: [-1, plan.heads, plan.layout.sequenceLength, -1], actual: q.shape)
        }
        let (batch, headDim) = (q.shape[0], q.shape[3])
        let expectedQ = [batch, plan.heads, plan.layout.sequenceLength, headDim]
        guard q.shape == expectedQ else { throw .shapeMismatch(input: "q", expected: expectedQ, actual: q.shape) }
        let keyValueHeads = k.rank == 4 ? k.shape[1] : 0
        let expectedKV = [batch, keyValueHeads, plan.layout.sequenceLength, headDim]
        guard k.shape == expectedKV else { throw .shapeMismatch(input: "k", expected: expectedKV, actual: k.shape) }
        guard v.shape == expectedKV else { throw .shapeMismatch(input: "v", expected: expectedKV, actual: v.shape) }
        let (qValues, kValues, vValues): ([Double], [Double], [Double])
        do throws(TensorError) {
            (qValues, kValues, vValues) = (try q.doubles(), try k.doubles(), try v.doubles())
        } catch {
            throw .tensor(error)
        }
        return try forward(
            q: qValues, k: kValues, v: vValues, batch: batch, headDim: headDim, plan: plan,
            keyValueHeads: keyValueHeads, scale: scale, textValid: textValid)
    }

    /// For each sequence position of `layout`, whether it is a real query: a video token that is not a
    /// hole, or a valid text token. Exactly the rows that attend at least one key; use it as the row mask
    /// of `AttentionAccuracy`. Cost: O(S).
    public static func realQueryMask(layout: STALayout) -> [Bool] {
        realQueryMask(layout: layout, textValid: layout.text.valid)
    }

    /// `realQueryMask(layout:)` for a batch row whose valid text length is `textValid` rather than the
    /// layout's.
    public static func realQueryMask(layout: STALayout, textValid: Int) -> [Bool] {
        var mask = layout.rasterIndexBySequenceIndex().map { $0 >= 0 }
        mask += (0..<layout.text.count).map { $0 < textValid }
        return mask
    }
}

extension StorageScalar {
    /// The value as a `Double` (exact for f32, f16 and bf16).
    fileprivate var doubleValue: Double { Double(floatValue) }
}

// MARK: Implementation

/// Validated sizes and inputs of one reference call.
private struct Problem {
    let q: [Double], k: [Double], v: [Double]
    let batch: Int, heads: Int, keyValueHeads: Int, sequenceLength: Int, headDim: Int
    let scale: Double

    init(
        q: [Double], k: [Double], v: [Double], batch: Int, heads: Int, keyValueHeads: Int?,
        sequenceLength: Int, headDim: Int, scale: Double?
    ) throws(ReferenceError) {
        let keyValueHeads = keyValueHeads ?? heads
        for (name, value) in [
            ("batch", batch), ("heads", heads), ("keyValueHeads", keyValueHeads),
            ("sequenceLength", sequenceLength), ("headDim", headDim),
        ] where value < 1 {
            throw .nonPositiveSize(name: name, value: value)
        }
        guard heads % keyValueHeads == 0 else {
            throw .headsNotMultipleOfKeyValueHeads(heads: heads, keyValueHeads: keyValueHeads)
        }
        let rowElements = sequenceLength * headDim
        for (name, tensor, count) in [
            ("q", q, batch * heads * rowElements), ("k", k, batch * keyValueHeads * rowElements),
            ("v", v, batch * keyValueHeads * rowElements),
        ] where tensor.count != count {
            throw .elementCountMismatch(input: name, expected: count, actual: tensor.count)
        }
        let scale = scale ?? 1 / Double(headDim).squareRoot()
        guard scale.isFinite else { throw .nonFiniteScale(scale) }
        (self.q, self.k, self.v) = (q, k, v)
        (self.batch, self.heads, self.keyValueHeads) = (batch, heads, keyValueHeads)
        (self.sequenceLength, self.headDim, self.scale) = (sequenceLength, headDim, scale)
    }

    /// Runs the rows of every (batch, head), `threads` pairs at a time (nil: all cores); `makeKeys` makes
    /// one key-list function per worker, which lists the attended keys of (batch, head, query). Rows
    /// outside `queryRows` (when given) stay 0 and −∞.
    func run(
        queryRows: [Int]?, threads: Int?, _ makeKeys: () -> (_ batch: Int, _ head: Int, _ query: Int) -> [Int]
    ) -> ReferenceAttention.Result {
        let rows = batch * heads * sequenceLength
        var output = [Double](repeating: 0, count: rows * headDim)
        var lse = [Double](repeating: -.infinity, count: rows)
        let group = heads / keyValueHeads
        let queries = queryRows ?? Array(0..<sequenceLength)
        let pairs = batch * heads
        let workers = max(1, min(pairs, threads ?? ProcessInfoLite.activeProcessorCount))
        let workerKeys = (0..<workers).map { _ in makeKeys() }
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    output.withUnsafeMutableBufferPointer { output in
                        lse.withUnsafeMutableBufferPointer { lse in
                            let (q, k, v) = (q.baseAddress!, k.baseAddress!, v.baseAddress!)
                            let (output, lse) = (output.baseAddress!, lse.baseAddress!)
                            // Each worker owns whole (batch, head) pairs: disjoint rows of output and lse.
                            nonisolated(unsafe) let shared = (q, k, v, output, lse, workerKeys)
                            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                let (q, k, v, output, lse, workerKeys) = shared
                                let keys = workerKeys[worker]
                                var scores = [Double]()
                                for pair in stride(from: worker, to: pairs, by: workers) {
                                    let (b, h) = (pair / heads, pair % heads)
                                    let kvBase = (b * keyValueHeads + h / group) * sequenceLength * headDim
                                    for i in queries {
                                        let row = (b * heads + h) * sequenceLength + i
                                        let attended = keys(b, h, i)
                                        if attended.isEmpty { continue }
                                        lse[row] = attendRow(
                                            query: q + row * headDim, keys: k + kvBase, values: v + kvBase,
                                            attended: attended, output: output + row * headDim, scores: &scores)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, lse)
    }

    /// Softmax attention of one query row over `attended` key rows; writes the output row and returns
    /// the log-sum-exp.
    private func attendRow(
        query: UnsafePointer<Double>, keys: UnsafePointer<Double>, values: UnsafePointer<Double>,
        attended: [Int], output: UnsafeMutablePointer<Double>, scores: inout [Double]
    ) -> Double {
        let d = headDim
        scores.removeAll(keepingCapacity: true)
        var maximum = -Double.infinity
        for key in attended {
            let score = scale * dot(query, keys + key * d, count: d)
            scores.append(score)
            if score > maximum { maximum = score }
        }
        var sum = 0.0
        for (index, key) in attended.enumerated() {
            let weight = Glibc.exp(scores[index] - maximum)
            sum += weight
            addScaled(values + key * d, weight, to: output, count: d)
        }
        var j = 0
        var finite = maximum.isFinite && sum.isFinite
        while j < d {
            output[j] /= sum
            finite = finite && output[j].isFinite
            j += 1
        }
        // Non-finite inputs (or results past the Double range): the whole row is NaN, never a mix.
        guard finite else {
            output.update(repeating: .nan, count: d)
            return .nan
        }
        return maximum + Glibc.log(sum)
    }
}

/// The key lists of an `AttentionPlan`, built per query tile from the tile lists.
private struct PlanKeySets {
    let plan: AttentionPlan
    /// Whether each video position is a real token (not a hole).
    let isRealVideo: [Bool]

    init(plan: AttentionPlan) {
        self.plan = plan
        self.isRealVideo = plan.layout.rasterIndexBySequenceIndex().map { $0 >= 0 }
    }

    /// Whether sequence position `index` is a real token of a batch row with `textValid` valid text tokens.
    func isReal(_ index: Int, textValid: Int) -> Bool {
        let video = plan.layout.paddedVideoTokenCount
        return index < video ? isRealVideo[index] : index - video < textValid
    }

    /// The query tile of `query`, or -1 for a text query (all text queries share one key set).
    func tile(ofQuery query: Int) -> Int {
        query < plan.layout.paddedVideoTokenCount ? query / plan.layout.tileVolume : -1
    }

    /// The real keys that a real query of tile `tile` (-1: text) attends for `head` in a batch row with
    /// `textValid` valid text tokens, ascending.
    func keys(head: Int, tile: Int, textValid: Int, into keys: inout [Int]) {
        let layout = plan.layout
        keys.removeAll(keepingCapacity: true)
        let video = layout.paddedVideoTokenCount
        if tile < 0 {
            for key in 0..<video where isRealVideo[key] { keys.append(key) }
        } else {
            for keyTile in plan.keyTiles(head: head, queryTile: tile) {
                let start = Int(keyTile) * layout.tileVolume
                for key in start..<(start + layout.tileVolume) where isRealVideo[key] { keys.append(key) }
            }
        }
        keys.append(contentsOf: video..<(video + textValid))
    }
}

/// Σ a[i]·b[i], in four interleaved partial sums (fewer loop steps; this code also runs unoptimised
/// in debug builds).
private func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, count: Int) -> Double {
    var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
    var i = 0
    while i + 4 <= count {
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    }
    while i < count {
        s0 += a[i] * b[i]
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}

/// y[i] += weight · x[i].
private func addScaled(_ x: UnsafePointer<Double>, _ weight: Double, to y: UnsafeMutablePointer<Double>, count: Int) {
    var i = 0
    while i + 4 <= count {
        y[i] += weight * x[i]
        y[i + 1] += weight * x[i + 1]
        y[i + 2] += weight * x[i + 2]
        y[i + 3] += weight * x[i + 3]
        i += 4
    }
    while i < count {
        y[i] += weight * x[i]
        i += 1
    }
}

/// The number of cores to use, without Foundation.
enum ProcessInfoLite {
    static var activeProcessorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
