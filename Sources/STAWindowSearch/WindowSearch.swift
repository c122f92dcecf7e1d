import STACPUKernels
import STAGeometry

/// One (denoising step, layer) pair: the unit a strategy assigns windows in.
public struct StepLayer: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let step: Int
    public let layer: Int

    public init(step: Int, layer: Int) {
        self.step = step
        self.layer = layer
    }

    public static func < (a: StepLayer, b: StepLayer) -> Bool { (a.step, a.layer) < (b.step, b.layer) }
    public var description: String { "step \(step), layer \(layer)" }
}

/// Head-specialised window search over captured activations (spec §6), training-free.
///
/// For every capture of a step at or after `fullSteps`, every candidate window is run on all heads next
/// to full attention on the same q, k, v (both with `CPUAttention`, fp32), and the error of the sparse
/// output against the full one is summed per (step, layer, candidate, head) over prompts and batch
/// entries, and divided by the number of compared elements at the end: the mean over prompts when every
/// capture of a (step, layer) has the same shape. Captures of earlier steps are not run: those steps
/// keep full attention. `result(_:)` then picks one window per head by a `SelectionRule`.
///
/// Errors are measured over the real video query rows only (not holes, not text rows): a text query
/// attends every key under any window, so its output never differs from full attention.
///
/// Two paths measure a capture, with the same rows and sums:
/// - the CPU path (the reference, no `measurer`): q, k, v read into fp32 arrays, `CPUAttention` (or the
///   `runner`), comparison in float64. Cost per measured capture: one full and one sparse attention per
///   candidate, i.e. 4·B·H·D·(real tokens)² · (1 + Σ candidate densities) FLOPs on the CPU, plus
///   O(B·H·S·D) per candidate to compare; memory: q, k, v and two outputs as fp32.
/// - a `WindowErrorMeasurer`, e.g. `CUDAWindowMeasurer`: the capture read once onto a GPU, attention and
///   the error sums there, a few bytes per (candidate, head) back. Cost per capture: the file read
///   (3·B·H·S·D · element size at the disk's rate) and copy, plus (1 + Σ candidate densities) × the full
///   attention kernel: for a HunyuanVideo 720p layer (2.1 GB in bf16) with 7 candidates on an H200, about
///   0.6 s of kernels plus the read — about 1 s, so a whole strategy (35 steps × 60 layers = 2,100
///   captures) about 35 minutes. `SearchAgreement` compares the two paths (`sta search --check`).
///
/// Adding every capture to one search (one `sta search` call) keeps the compiled kernels and device
/// buffers and lets the measurer read the next file while the current one runs (`add(_:prefetching:)`).
public struct WindowSearch: Sendable {
    /// Computes one attention output for the search: `q`, `k`, `v` and the result are
    /// [batch, plan.heads, S, headDim] fp32. Lets a caller run the search on another backend (a GPU);
    /// the default is `CPUAttention` with `threads`.
    public typealias AttentionRunner = @Sendable (
        _ plan: AttentionPlan, _ batch: Int, _ headDim: Int, _ q: [Float], _ k: [Float], _ v: [Float]
    ) throws -> [Float]

    public let layout: STALayout
    /// Distinct resolved candidate windows, in the order given.
    public let candidates: [Window]
    /// Steps `0..<fullSteps` keep full attention (FastVideo's T0; 15 of 50 for HunyuanVideo).
    public let fullSteps: Int
    /// Worker threads of the attention kernel; nil means every core.
    public let threads: Int?
    /// Error sums per (step, layer): `[candidate][head]`.
    public private(set) var errors: [StepLayer: [[OutputError]]] = [:]
    /// Distinct prompts measured per (step, layer).
    public private(set) var prompts: [StepLayer: Set<String>] = [:]
    /// Heads of every layer seen in any capture, measured or not.
    public private(set) var headsByLayer: [Int: Int] = [:]
    /// The compared and read rows of the layout.
    public let rows: SearchRows
    /// Sequence indices of the real video tokens (the compared query rows).
    private var comparedRows: [Int] { rows.compared }
    /// Sequence indices of every row attention reads: the real video tokens and the valid text.
    private var readRows: [Int] { rows.read }
    /// Runs attention instead of `CPUAttention` when set.
    private let runner: AttentionRunner?
    /// Measures whole captures instead of the CPU path when set (a GPU keeps the capture on the device).
    public let measurer: (any WindowErrorMeasurer)?

    /// The full window of the layout: every tile on every axis.
    public var fullWindow: Window { Window(tiles: layout.tileGrid) }

    /// Validates and resolves `candidates` (nil: `defaultCandidates(for:)`); duplicates after resolving
    /// are dropped. `runner` replaces the CPU kernel (then `threads` is unused); `measurer` replaces the
    /// whole measurement of a capture in `add(_:prefetching:)` (give at most one of the two).
    public init(
        layout: STALayout, candidates: [Window]? = nil, fullSteps: Int = 15, threads: Int? = nil,
        runner: AttentionRunner? = nil, measurer: (any WindowErrorMeasurer)? = nil
    ) throws(WindowSearchError) {
        guard fullSteps >= 0 else { throw .negativeFullSteps(fullSteps) }
        guard runner == nil || measurer == nil else {
            throw .backend("give an attention runner or a measurer, not both (the measurer runs attention itself)")
        }
        if let threads, threads < 1 { throw .attention(.invalidThreadCount(threads)) }
        let given = candidates ?? Self.defaultCandidates(for: layout)
        guard !given.isEmpty else { throw .badCandidates("the list is empty; give at least one window") }
        var resolved = [Window]()
        for window in given {
            let clamped: Window
            do throws(GeometryError) { clamped = try layout.resolve(window) } catch {
                throw .badCandidates("\(window): \(error.description)")
            }
            if !resolved.contains(clamped) { resolved.append(clamped) }
        }
        self.layout = layout
        self.candidates = resolved
        self.fullSteps = fullSteps
        self.threads = threads
        self.runner = runner
        self.measurer = measurer
        self.rows = SearchRows(layout: layout)
    }

    /// FastVideo-like candidates: every window whose size per axis is odd and below the axis' tile
    /// count, or the whole axis — all combinations except the full window itself (full attention is
    /// what the early steps and the fallbacks use, and would always have the smallest error). For
    /// HunyuanVideo's 5×6×10 tile grid: {1,3,5} × {1,3,5,6} × {1,3,5,7,9,10} − full = 71 windows.
    public static func defaultCandidates(for layout: STALayout) -> [Window] {
        let sizesPerAxis = layout.tileGrid.map { n in Array(stride(from: 1, to: n, by: 2)) + [n] }
        var windows: [[Int]] = [[]]
        for sizes in sizesPerAxis {
            windows = windows.flatMap { prefix in sizes.map { prefix + [$0] } }
        }
        return windows.filter { $0 != layout.tileGrid }.map { Window(tiles: $0) }
    }

    /// Key-tile density of a resolved window: key tiles per query tile / tiles, in (0, 1].
    public func density(of window: Window) -> Double {
        Double(window.tileCount) / Double(layout.tileCount)
    }

    // MARK: Measuring

    /// Adds `capture`: measures it when its step is at least `fullSteps`, otherwise only records its
    /// layer's head count. `next`, the capture to be added after this one, lets a measurer start reading
    /// it while this one runs (see `WindowErrorMeasurer`).
    ///
    /// Cost on the CPU path: reads q, k, v as fp32 host arrays, then the attention of `measure`. With a
    /// `measurer`: what the measurer documents (`CUDAWindowMeasurer`: the file read once, the kernels on
    /// the device, a few bytes back per candidate and head).
    public mutating func add(_ capture: ActivationCapture, prefetching next: ActivationCapture? = nil) throws(WindowSearchError) {
        let key = StepLayer(step: capture.step, layer: capture.layer)
        if let heads = headsByLayer[capture.layer], heads != capture.heads {
            throw .headCountMismatch(layer: capture.layer, expected: heads, actual: capture.heads, path: capture.path)
        }
        headsByLayer[capture.layer] = capture.heads
        guard capture.step >= fullSteps else { return }
        let measured: [[OutputError]]
        if let measurer {
            let next = next.flatMap { $0.step >= fullSteps ? $0 : nil }
            measured = try measurer.measure(capture, candidates: candidates, layout: layout, rows: rows, next: next)
            guard measured.count == candidates.count, measured.allSatisfy({ $0.count == capture.heads }) else {
                throw .backend("the measurer returned \(measured.map(\.count)) errors per candidate; "
                    + "\(candidates.count) candidates × \(capture.heads) heads are needed")
            }
        } else {
            let (q, k, v) = try capture.tensors()
            measured = try measure(
                q: q, k: k, v: v, batch: capture.batch, heads: capture.heads, headDim: capture.headDim, source: capture.path)
        }
        var sums = errors[key] ?? Array(repeating: Array(repeating: .zero, count: capture.heads), count: candidates.count)
        for candidate in candidates.indices {
            for head in 0..<capture.heads { sums[candidate][head].add(measured[candidate][head]) }
        }
        errors[key] = sums
        prompts[key, default: []].insert(capture.prompt)
    }

    /// The error of every candidate on every head for one set of q, k, v ([batch, heads, S, headDim],
    /// S = `layout.sequenceLength`), as `[candidate][head]`, summed over the batch.
    ///
    /// - Throws: `nonFiniteActivation` when q, k or v holds NaN or ±∞ (attention would give NaN rows and
    ///   every error would be meaningless), and `nonFiniteOutput` when an output is not finite anyway;
    ///   both name `source` (the capture's path). Cost of the checks: one pass over q, k, v and the outputs.
    public func measure(
        q: [Float], k: [Float], v: [Float], batch: Int, heads: Int, headDim: Int, source: String = "(in memory)"
    ) throws(WindowSearchError) -> [[OutputError]] {
        let shape = [batch, heads, layout.sequenceLength, headDim]
        for (name, values) in [("q", q), ("k", k), ("v", v)] {
            try requireFinite(values, name: name, shape: shape, source: source)
        }
        let full = try attention(window: fullWindow, q: q, k: k, v: v, batch: batch, heads: heads, headDim: headDim)
        guard full.allSatisfy({ $0.isFinite }) else { throw .nonFiniteOutput(path: source, window: "\(fullWindow) (full)") }
        var result = [[OutputError]]()
        for candidate in candidates {
            let sparse = candidate == fullWindow
                ? full : try attention(window: candidate, q: q, k: k, v: v, batch: batch, heads: heads, headDim: headDim)
            let errors = compare(sparse, full, batch: batch, heads: heads, headDim: headDim)
            guard errors.allSatisfy({ $0.squaredError.isFinite && $0.absoluteError.isFinite }) else {
                throw .nonFiniteOutput(path: source, window: "\(candidate)")
            }
            result.append(errors)
        }
        return result
    }

    /// Throws `nonFiniteActivation` naming the first non-finite element of `values` ([b, h, s, d]) in a
    /// row that attention reads (real video tokens and valid text; holes and padding text are never read).
    private func requireFinite(
        _ values: [Float], name: String, shape: [Int], source: String
    ) throws(WindowSearchError) {
        let (s, d) = (shape[2], shape[3])
        var first: [Int]? = nil
        var firstValue: Float = 0
        var count = 0
        for batchHead in 0..<(shape[0] * shape[1]) {
            for row in readRows {
                let start = (batchHead * s + row) * d
                for c in 0..<d where !values[start + c].isFinite {
                    if first == nil {
                        first = [batchHead / shape[1], batchHead % shape[1], row, c]
                        firstValue = values[start + c]
                    }
                    count += 1
                }
            }
        }
        if let first {
            throw .nonFiniteActivation(path: source, name: name, index: first, value: Double(firstValue), count: count)
        }
    }

    private func attention(
        window: Window, q: [Float], k: [Float], v: [Float], batch: Int, heads: Int, headDim: Int
    ) throws(WindowSearchError) -> [Float] {
        let plan: AttentionPlan
        do throws(GeometryError) { plan = try AttentionPlan(layout: layout, window: window, heads: heads) } catch {
            throw .geometry(error)
        }
        if let runner {
            let output: [Float]
            do { output = try runner(plan, batch, headDim, q, k, v) } catch { throw .backend("\(error)") }
            guard output.count == q.count else {
                throw .backend("the attention runner returned \(output.count) elements; \(q.count) are needed")
            }
            return output
        }
        do throws(CPUAttentionError) {
            return try CPUAttention.forward(
                plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, threads: threads).output
        } catch {
            throw .attention(error)
        }
    }

    /// Per-head error sums of `sparse` against `full` over the compared rows.
    private func compare(_ sparse: [Float], _ full: [Float], batch: Int, heads: Int, headDim: Int) -> [OutputError] {
        var perHead = [OutputError](repeating: .zero, count: heads)
        let sequenceLength = layout.sequenceLength
        for b in 0..<batch {
            for h in 0..<heads {
                var error = OutputError()
                let base = (b * heads + h) * sequenceLength
                for row in comparedRows {
                    let start = (base + row) * headDim
                    for index in start..<(start + headDim) {
                        let reference = Double(full[index])
                        let difference = Double(sparse[index]) - reference
                        error.squaredError += difference * difference
                        error.absoluteError += abs(difference)
                        error.squaredReference += reference * reference
                    }
                }
                error.elementCount = comparedRows.count * headDim
                perHead[h].add(error)
            }
        }
        return perHead
    }
}
