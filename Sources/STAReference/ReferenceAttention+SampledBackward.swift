import Dispatch
import Glibc
import STAGeometry
import STATensors

extension ReferenceAttention {
    /// Chosen rows of the float64 backward pass (spec §3) of a problem too large to reference whole: dq on
    /// `queryRows` and dk, dv on `keyRows` of every (batch, head), with the formulas of
    /// `backward(q:k:v:output:lse:outputGradient:…)` restricted to those rows.
    ///
    /// A dq row needs only its own query's attended keys; a dk or dv row needs every query that attends its
    /// key: the real queries of the query tiles whose key lists hold the key's tile (the plan's inverse
    /// lists) and every valid text query, or, for a valid text key, every real query. Those queries'
    /// `lse` and Δ = dO · O come from the given `lse` and `output` (the forward being checked), as in the
    /// whole-problem reference. Storage values are read in place and widened element by element, so no
    /// `Double` copy of the inputs is made.
    ///
    /// - Parameters:
    ///   - q, k, v, output, outputGradient: [batch, plan.heads, S, headDim], S = `plan.layout.sequenceLength`.
    ///   - lse: [batch, plan.heads, S], natural log.
    ///   - scale: nil means 1/√headDim.
    ///   - queryRows, keyRows: sequence indices in 0..<S (any order; repeats allowed).
    /// - Returns: dq as [batch, heads, queryRows.count, headDim] and dk, dv as
    ///   [batch, heads, keyRows.count, headDim]. Rows of holes and padding text (the layout's `text.valid`)
    ///   are 0, as are dq rows whose lse is −∞.
    /// - Throws: `ReferenceError` when a size or count is wrong, a row index is outside 0..<S, or the
    ///   scale is not finite.
    ///
    /// Cost: per (batch, head), about 6 · D flops per attended key of each query row and 10 · D flops per
    /// attending query of each key row; (batch, head, row) items run on all cores. Specialised for the three
    /// storage types, so callers in other modules do not run the generic code.
    @_specialize(where T == BFloat16)
    @_specialize(where T == Float16)
    @_specialize(where T == Float)
    public static func sampledBackward<T: StorageScalar>(
        q: [T], k: [T], v: [T], output: [T], lse: [Float], outputGradient: [T],
        batch: Int, headDim: Int, plan: AttentionPlan, scale: Double? = nil, queryRows: [Int], keyRows: [Int]
    ) throws(ReferenceError) -> Gradients {
        let layout = plan.layout
        let sequence = layout.sequenceLength
        for (name, value) in [("batch", batch), ("headDim", headDim)] where value < 1 {
            throw .nonPositiveSize(name: name, value: value)
        }
        let rows = batch * plan.heads * sequence
        for (name, count, expected) in [
            ("q", q.count, rows * headDim), ("k", k.count, rows * headDim), ("v", v.count, rows * headDim),
            ("output", output.count, rows * headDim), ("lse", lse.count, rows),
            ("outputGradient", outputGradient.count, rows * headDim),
        ] where count != expected {
            throw .elementCountMismatch(input: name, expected: expected, actual: count)
        }
        for row in queryRows + keyRows where !(0..<sequence).contains(row) {
            throw .rowOutOfRange(row: row, sequenceLength: sequence)
        }
        let scale = scale ?? 1 / Double(headDim).squareRoot()
        guard scale.isFinite else { throw .nonFiniteScale(scale) }
        let sampler = SampledBackward(
            plan: plan, batch: batch, headDim: headDim, scale: scale, queryRows: queryRows, keyRows: keyRows)
        return q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    output.withUnsafeBufferPointer { o in
                        outputGradient.withUnsafeBufferPointer { dO in
                            lse.withUnsafeBufferPointer { lse in
                                sampler.run(SampledBackward.Inputs(q: q, k: k, v: v, o: o, dO: dO, lse: lse))
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Implementation

/// The row lists and attendance structure of one sampled backward call.
private struct SampledBackward: Sendable {
    struct Inputs<T: StorageScalar>: @unchecked Sendable {
        let q: UnsafeBufferPointer<T>, k: UnsafeBufferPointer<T>, v: UnsafeBufferPointer<T>
        let o: UnsafeBufferPointer<T>, dO: UnsafeBufferPointer<T>
        let lse: UnsafeBufferPointer<Float>
    }

    let plan: AttentionPlan
    let batch: Int, headDim: Int, scale: Double
    let queryRows: [Int], keyRows: [Int]
    /// Whether each sequence position is a real token (not a hole, not padding text).
    let isReal: [Bool]
    let queryTileStart: [Int32], queryTiles: [Int32]

    init(plan: AttentionPlan, batch: Int, headDim: Int, scale: Double, queryRows: [Int], keyRows: [Int]) {
        self.plan = plan
        (self.batch, self.headDim, self.scale) = (batch, headDim, scale)
        (self.queryRows, self.keyRows) = (queryRows, keyRows)
        isReal = ReferenceAttention.realQueryMask(layout: plan.layout)
        (queryTileStart, queryTiles) = plan.inverseKeyTileLists()
    }

    var video: Int { plan.layout.paddedVideoTokenCount }
    var validTextEnd: Int { video + plan.layout.text.valid }

    /// The real keys a real query `query` of `head` attends, ascending.
    func attendedKeys(head: Int, query: Int) -> [Int] {
        var keys = [Int]()
        if query >= video {
            keys = (0..<video).filter { isReal[$0] }
        } else {
            let volume = plan.layout.tileVolume
            for tile in plan.keyTiles(head: head, queryTile: query / volume) {
                let start = Int(tile) * volume
                keys += (start..<(start + volume)).filter { isReal[$0] }
            }
        }
        return keys + Array(video..<validTextEnd)
    }

    /// The real queries of `head` that attend the real key `key`, ascending.
    func attendingQueries(head: Int, key: Int) -> [Int] {
        if key >= video { return (0..<validTextEnd).filter { isReal[$0] } }
        let volume = plan.layout.tileVolume
        let row = Int(plan.windowIndexByHead[head]) * plan.layout.tileCount + key / volume
        var queries = [Int]()
        for tile in queryTiles[Int(queryTileStart[row])..<Int(queryTileStart[row + 1])] {
            let start = Int(tile) * volume
            queries += (start..<(start + volume)).filter { isReal[$0] }
        }
        return queries + Array(video..<validTextEnd)
    }

    func run<T: StorageScalar>(_ inputs: Inputs<T>) -> ReferenceAttention.Gradients {
        let (heads, d, s) = (plan.heads, headDim, plan.layout.sequenceLength)
        let slices = batch * heads
        var dq = [Double](repeating: 0, count: slices * queryRows.count * d)
        var dk = [Double](repeating: 0, count: slices * keyRows.count * d)
        var dv = dk
        // One item per (slice, sampled row): query items first, then key items; each writes its own rows.
        let queryItems = slices * queryRows.count
        let items = queryItems + slices * keyRows.count
        dq.withUnsafeMutableBufferPointer { dq in
            dk.withUnsafeMutableBufferPointer { dk in
                dv.withUnsafeMutableBufferPointer { dv in
                    nonisolated(unsafe) let outputs = (dq.baseAddress!, dk.baseAddress!, dv.baseAddress!)
                    let workers = max(1, min(items, ProcessInfoLite.activeProcessorCount))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        let (dq, dk, dv) = outputs
                        var a = [Double](repeating: 0, count: d), b = a, c = a
                        for item in stride(from: worker, to: items, by: workers) {
                            if item < queryItems {
                                let (slice, index) = item.quotientAndRemainder(dividingBy: queryRows.count)
                                let row = queryRows[index]
                                guard isReal[row] else { continue }
                                queryRow(
                                    inputs, head: slice % heads, row: row, base: slice * s,
                                    into: dq + (slice * queryRows.count + index) * d, scratch: &a, &b)
                            } else {
                                let (slice, index) = (item - queryItems).quotientAndRemainder(dividingBy: keyRows.count)
                                let row = keyRows[index]
                                guard isReal[row] else { continue }
                                let offset = (slice * keyRows.count + index) * d
                                keyRow(
                                    inputs, head: slice % heads, row: row, base: slice * s, dk: dk + offset,
                                    dv: dv + offset, scratch: &a, &b, &c)
                            }
                        }
                    }
                }
            }
        }
        return (dq, dk, dv)
    }

    /// dq of one query row: scale · Σ_j P_ij (dO_i · v_j − Δ_i) k_j over its attended keys.
    private func queryRow<T: StorageScalar>(
        _ x: Inputs<T>, head: Int, row: Int, base: Int, into dq: UnsafeMutablePointer<Double>,
        scratch query: inout [Double], _ gradient: inout [Double]
    ) {
        let d = headDim
        let lse = Double(x.lse[base + row])
        guard lse != -.infinity else { return }
        let at = (base + row) * d
        widen(x.q, at, into: &query)
        widen(x.dO, at, into: &gradient)
        let delta = dot(gradient, x.o, at)
        for key in attendedKeys(head: head, query: row) {
            let keyAt = (base + key) * d
            let p = Glibc.exp(scale * dot(query, x.k, keyAt) - lse)
            let dS = scale * p * (dot(gradient, x.v, keyAt) - delta)
            for c in 0..<d { dq[c] += dS * Double(x.k[keyAt + c].floatValue) }
        }
    }

    /// dk and dv of one key row: dv_j = Σ_i P_ij dO_i and dk_j = scale · Σ_i P_ij (dO_i · v_j − Δ_i) q_i over
    /// the queries that attend it (each query row widened once).
    private func keyRow<T: StorageScalar>(
        _ x: Inputs<T>, head: Int, row: Int, base: Int, dk: UnsafeMutablePointer<Double>,
        dv: UnsafeMutablePointer<Double>, scratch key: inout [Double], _ value: inout [Double],
        _ query: inout [Double]
    ) {
        let d = headDim
        let at = (base + row) * d
        widen(x.k, at, into: &key)
        widen(x.v, at, into: &value)
        for i in attendingQueries(head: head, key: row) {
            let lse = Double(x.lse[base + i])
            guard lse != -.infinity else { continue }
            let queryAt = (base + i) * d
            var score = 0.0
            for c in 0..<d {
                query[c] = Double(x.q[queryAt + c].floatValue)
                score += key[c] * query[c]
            }
            let p = Glibc.exp(scale * score - lse)
            var dP = 0.0, delta = 0.0
            for c in 0..<d {
                let g = Double(x.dO[queryAt + c].floatValue)
                dP += g * value[c]
                delta += g * Double(x.o[queryAt + c].floatValue)
                dv[c] += p * g
            }
            let dS = scale * p * (dP - delta)
            for c in 0..<d { dk[c] += dS * query[c] }
        }
    }

    private func widen<T: StorageScalar>(_ values: UnsafeBufferPointer<T>, _ at: Int, into row: inout [Double]) {
        for c in 0..<headDim { row[c] = Double(values[at + c].floatValue) }
    }

    /// Σ a[c] · values[at + c] over the head dim.
    private func dot<T: StorageScalar>(_ a: [Double], _ values: UnsafeBufferPointer<T>, _ at: Int) -> Double {
        var sum = 0.0
        for c in 0..<headDim { sum += a[c] * Double(values[at + c].floatValue) }
        return sum
    }
}
