import Dispatch
import Glibc
import STAGeometry
import STATensors

extension ReferenceAttention {
    /// Gradients of the loss with respect to q, k and v, in the layouts of q, k and v.
    public typealias Gradients = (dq: [Double], dk: [Double], dv: [Double])

    /// The float64 backward pass of STA attention under `plan` (spec §3), for fine-tuning.
    ///
    /// With P = exp(scale · Q Kᵀ − L) over the pairs the plan allows (L the forward's log-sum-exp, natural
    /// log), dO the gradient of the loss with respect to the output O, and Δ_i = Σ_d dO_id · O_id:
    ///
    ///     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
    ///
    /// computed row by row exactly as written (no tiling), in `Double`.
    ///
    /// - Parameters:
    ///   - q, output, outputGradient: [batch, plan.heads, S, headDim], S = `plan.layout.sequenceLength`.
    ///   - k, v: [batch, keyValueHeads, S, headDim]; query head h reads key/value head
    ///     h / (heads / keyValueHeads) and its dK, dV sum over the query heads of its group.
    ///   - lse: [batch, plan.heads, S], the forward's log-sum-exp.
    ///   - scale: nil means 1/√headDim; it must be the forward's.
    ///   - textValid: valid text length of each batch row, as given to the forward (nil: the plan's
    ///     `text.valid` for every row); padding text rows get dq = dk = dv = 0.
    /// - Returns: dq with q's layout, dk and dv with k's. Rows that attend nothing (holes, padding text, and
    ///   any row whose lse is −∞) contribute nothing and get dq = 0; keys that nothing attends (holes,
    ///   padding text) get dk = dv = 0. `output` and `outputGradient` of such rows are never read.
    /// - Throws: `ReferenceError` when a size or count is wrong or the scale is not finite.
    ///
    /// Cost: about 8 · D flops per attended pair, plus O(S · D) per (batch, head); (batch, key/value head)
    /// pairs run in parallel on all cores.
    public static func backward(
        q: [Double], k: [Double], v: [Double], output: [Double], lse: [Double], outputGradient: [Double],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil
    ) throws(ReferenceError) -> Gradients {
        let problem = try BackwardProblem(
            q: q, k: k, v: v, output: output, lse: lse, outputGradient: outputGradient, batch: batch,
            headDim: headDim, plan: plan, keyValueHeads: keyValueHeads, scale: scale, textValid: textValid)
        return problem.run()
    }

    /// The backward pass with L recomputed from q and k: as `backward(q:k:v:output:lse:…)`, but each row's
    /// L = log Σ exp(scale · q·k) is computed (maximum first) from the very scores its P is then computed
    /// from, so P = exp(s − L) is the row's softmax even where |s| is so large that an L computed elsewhere
    /// and stored — in fp32, or even in Double — would not carry it (scores of 1e20 and beyond: a Double
    /// score is only known to 1e4 there). A row whose scores are NaN, all −∞ or hold +∞ gets NaN in every
    /// gradient it touches, as with a NaN lse. This is the judge for inputs of any magnitude.
    public static func backward(
        q: [Double], k: [Double], v: [Double], output: [Double], outputGradient: [Double],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil
    ) throws(ReferenceError) -> Gradients {
        let problem = try BackwardProblem(
            q: q, k: k, v: v, output: output, lse: nil, outputGradient: outputGradient, batch: batch,
            headDim: headDim, plan: plan, keyValueHeads: keyValueHeads, scale: scale, textValid: textValid)
        return problem.run()
    }

    /// The backward pass with L recomputed, for storage-type inputs (converted to `Double` exactly).
    public static func backward<T: StorageScalar>(
        q: [T], k: [T], v: [T], output: [T], outputGradient: [T],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil
    ) throws(ReferenceError) -> Gradients {
        func wide(_ values: [T]) -> [Double] { values.map { Double($0.floatValue) } }
        return try backward(
            q: wide(q), k: wide(k), v: wide(v), output: wide(output), outputGradient: wide(outputGradient),
            batch: batch, headDim: headDim, plan: plan, keyValueHeads: keyValueHeads, scale: scale,
            textValid: textValid)
    }

    /// The backward pass for storage-type inputs (converted to `Double` exactly); `lse` is taken as given.
    public static func backward<T: StorageScalar>(
        q: [T], k: [T], v: [T], output: [T], lse: [Float], outputGradient: [T],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int? = nil, scale: Double? = nil,
        textValid: [Int]? = nil
    ) throws(ReferenceError) -> Gradients {
        func wide(_ values: [T]) -> [Double] { values.map { Double($0.floatValue) } }
        return try backward(
            q: wide(q), k: wide(k), v: wide(v), output: wide(output), lse: lse.map(Double.init),
            outputGradient: wide(outputGradient), batch: batch, headDim: headDim, plan: plan,
            keyValueHeads: keyValueHeads, scale: scale, textValid: textValid)
    }
}

// MARK: Implementation

/// Validated inputs of one reference backward call.
private struct BackwardProblem {
    let q: [Double], k: [Double], v: [Double], output: [Double], outputGradient: [Double]
    /// The forward's log-sum-exp, or nil: recomputed per row from the scores P is computed from.
    let lse: [Double]?
    let plan: AttentionPlan
    let batch: Int, heads: Int, keyValueHeads: Int, sequenceLength: Int, headDim: Int
    let scale: Double
    let textValid: [Int]

    init(
        q: [Double], k: [Double], v: [Double], output: [Double], lse: [Double]?, outputGradient: [Double],
        batch: Int, headDim: Int, plan: AttentionPlan, keyValueHeads: Int?, scale: Double?, textValid: [Int]?
    ) throws(ReferenceError) {
        let heads = plan.heads
        let keyValueHeads = keyValueHeads ?? heads
        let sequenceLength = plan.layout.sequenceLength
        for (name, value) in [("batch", batch), ("keyValueHeads", keyValueHeads), ("headDim", headDim)]
        where value < 1 {
            throw .nonPositiveSize(name: name, value: value)
        }
        guard heads % keyValueHeads == 0 else {
            throw .headsNotMultipleOfKeyValueHeads(heads: heads, keyValueHeads: keyValueHeads)
        }
        let rows = batch * heads * sequenceLength
        let keyElements = batch * keyValueHeads * sequenceLength * headDim
        for (name, count, expected) in [
            ("q", q.count, rows * headDim), ("k", k.count, keyElements), ("v", v.count, keyElements),
            ("output", output.count, rows * headDim), ("lse", lse?.count ?? rows, rows),
            ("outputGradient", outputGradient.count, rows * headDim),
        ] where count != expected {
            throw .elementCountMismatch(input: name, expected: expected, actual: count)
        }
        let scale = scale ?? 1 / Double(headDim).squareRoot()
        guard scale.isFinite else { throw .nonFiniteScale(scale) }
        self.textValid = try ReferenceAttention.validatedTextValid(textValid, batch: batch, layout: plan.layout)
        (self.q, self.k, self.v, self.output, self.lse, self.outputGradient) = (q, k, v, output, lse, outputGradient)
        self.plan = plan
        (self.batch, self.heads, self.keyValueHeads) = (batch, heads, keyValueHeads)
        (self.sequenceLength, self.headDim, self.scale) = (sequenceLength, headDim, scale)
    }

    /// The real keys a real query of `tile` (-1: a text query) attends under `head`'s window in a batch row
    /// with `textValid` valid text tokens, ascending.
    private func keys(head: Int, tile: Int, textValid: Int, isReal: [Bool]) -> [Int] {
        let layout = plan.layout
        let video = layout.paddedVideoTokenCount
        var keys = [Int]()
        if tile < 0 {
            keys = (0..<video).filter { isReal[$0] }
        } else {
            for keyTile in plan.keyTiles(head: head, queryTile: tile) {
                let start = Int(keyTile) * layout.tileVolume
                keys += (start..<(start + layout.tileVolume)).filter { isReal[$0] }
            }
        }
        return keys + Array(video..<(video + textValid))
    }

    func run() -> ReferenceAttention.Gradients {
        let (s, d) = (sequenceLength, headDim)
        var dq = [Double](repeating: 0, count: q.count)
        var dk = [Double](repeating: 0, count: k.count)
        var dv = [Double](repeating: 0, count: v.count)
        let video = plan.layout.paddedVideoTokenCount
        // Per distinct valid text length: the real-row mask and the key lists per (window, query tile),
        // plus one for text queries (index tileCount).
        let tileCount = plan.layout.tileCount
        var masks = [Int: [Bool]]()
        var keyLists = [Int: [[[Int]]]]()
        for text in Set(textValid) {
            let isReal = ReferenceAttention.realQueryMask(layout: plan.layout, textValid: text)
            masks[text] = isReal
            keyLists[text] = (0..<plan.windows.count).map { window in
                let head = plan.windowIndexByHead.firstIndex(of: Int32(window)) ?? 0
                return (0...tileCount).map {
                    keys(head: head, tile: $0 < tileCount ? $0 : -1, textValid: text, isReal: isReal)
                }
            }
        }
        let (isRealByText, keysByText) = (masks, keyLists)
        let group = heads / keyValueHeads
        let pairs = batch * keyValueHeads
        let workers = max(1, min(pairs, ProcessInfoLite.activeProcessorCount))
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    output.withUnsafeBufferPointer { o in
                        (lse ?? []).withUnsafeBufferPointer { lse in
                            outputGradient.withUnsafeBufferPointer { dO in
                                dq.withUnsafeMutableBufferPointer { dq in
                                    dk.withUnsafeMutableBufferPointer { dk in
                                        dv.withUnsafeMutableBufferPointer { dv in
                                            // A worker owns whole (batch, key/value head) pairs: the dk, dv rows
                                            // of that head and the dq rows of its query heads.
                                            nonisolated(unsafe) let shared = (q, k, v, o, lse, dO, dq, dk, dv)
                                            let givenLSE = self.lse != nil
                                            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                                let (q, k, v, o, lse, dO, dq, dk, dv) = shared
                                                var attended = [(key: Int, probability: Double)]()
                                                var scores = [Double]()
                                                for pair in stride(from: worker, to: pairs, by: workers) {
                                                    let (b, kvHead) = (pair / keyValueHeads, pair % keyValueHeads)
                                                    let kvBase = pair * s
                                                    let isReal = isRealByText[textValid[b]]!
                                                    let keysByWindow = keysByText[textValid[b]]!
                                                    for h in (kvHead * group)..<((kvHead + 1) * group) {
                                                        let keyLists = keysByWindow[Int(plan.windowIndexByHead[h])]
                                                        for i in 0..<s where isReal[i] {
                                                            let row = (b * heads + h) * s + i
                                                            if givenLSE && lse[row] == -.infinity { continue }
                                                            let keys = keyLists[i < video ? i / plan.layout.tileVolume : tileCount]
                                                            let qRow = row * d, dORow = row * d
                                                            // Scores once; L given, or recomputed from them.
                                                            scores.removeAll(keepingCapacity: true)
                                                            for key in keys {
                                                                let kRow = (kvBase + key) * d
                                                                var dot = 0.0
                                                                for c in 0..<d { dot += q[qRow + c] * k[kRow + c] }
                                                                scores.append(scale * dot)
                                                            }
                                                            let logSum = givenLSE ? lse[row] : Self.logSumExp(scores)
                                                            if logSum == -.infinity { continue }
                                                            // P row and dV.
                                                            attended.removeAll(keepingCapacity: true)
                                                            for (index, key) in keys.enumerated() {
                                                                let kRow = (kvBase + key) * d
                                                                let p = Glibc.exp(scores[index] - logSum)
                                                                attended.append((key, p))
                                                                for c in 0..<d { dv[kRow + c] += p * dO[dORow + c] }
                                                            }
                                                            var delta = 0.0
                                                            for c in 0..<d { delta += dO[dORow + c] * o[qRow + c] }
                                                            // dS, then dQ and dK.
                                                            for (key, p) in attended {
                                                                let kRow = (kvBase + key) * d
                                                                var dP = 0.0
                                                                for c in 0..<d { dP += dO[dORow + c] * v[kRow + c] }
                                                                let dS = scale * p * (dP - delta)
                                                                for c in 0..<d {
                                                                    dq[qRow + c] += dS * k[kRow + c]
                                                                    dk[kRow + c] += dS * q[qRow + c]
                                                                }
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dq, dk, dv)
    }

    /// log Σ exp(s) over `scores`, maximum first: −∞ for no scores; NaN when a score is NaN, one is +∞ or
    /// all are −∞ (softmax undefined, as in the forward reference).
    static func logSumExp(_ scores: [Double]) -> Double {
        guard !scores.isEmpty else { return -.infinity }
        var maximum = -Double.infinity
        for score in scores {
            if score.isNaN { return .nan }
            maximum = max(maximum, score)
        }
        guard maximum.isFinite else { return .nan }
        var sum = 0.0
        for score in scores { sum += Glibc.exp(score - maximum) }
        return maximum + Glibc.log(sum)
    }
}
