import Dispatch
import STACPUKernelsC
import STAGeometry
import STATensors
import Synchronization

extension CPUAttention {
    /// The backward pass of attention under `plan` (spec §3), for fine-tuning: the gradients of a loss
    /// with respect to q, k and v, given the forward's output O, its log-sum-exp L and the output's
    /// gradient dO.
    ///
    /// With P = exp(scale · Q Kᵀ − L) over the pairs the plan allows and Δ_i = Σ_d dO_id · O_id:
    ///
    ///     dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − Δ),   dQ = scale · dS K,   dK = scale · dSᵀ Q
    ///
    /// computed flash-style in two passes with fp32 accumulation and P recomputed from q, k and L (no S×S
    /// matrix is stored): one pass owns blocks of key rows and streams the query rows that attend them
    /// (dK, dV), the other owns blocks of query rows like the forward and streams their keys (dQ). Work
    /// items own disjoint rows, so no two threads write the same element.
    ///
    /// - Parameters:
    ///   - q, k, v, output, outputGradient: [batch, plan.heads, plan.layout.sequenceLength, headDim], in tile
    ///     order then text; `output` and `lse` as `forward` returned them (`lse` natural log).
    ///   - dq, dk, dv: same shape, `Float`, written completely. Gradients are returned in fp32 whatever the
    ///     storage type: dK and dV sum over every query that attends a key, and a caller that wants them
    ///     in bf16 or fp16 rounds once at the end.
    ///   - scale: the forward's scale; nil means 1/√headDim.
    ///   - textValid: valid text length of each batch row, as given to the forward (nil: the plan's
    ///     `text.valid` for every row). Padding text rows get dq = dk = dv = 0.
    ///   - threads: worker threads; nil means every online core.
    /// - Rows that attend nothing (holes, padding text, and any row whose lse is −∞) contribute nothing
    ///   and get dq = 0; keys that nothing attends (holes, padding text) get dk = dv = 0. Their rows of q,
    ///   k, v, output and outputGradient are never read.
    /// - Rows whose lse fp32 cannot carry — +∞ (scores past the fp32 range) or |lse| ≥
    ///   `exactBackwardLSELimit` — are done in float64 after the fp32 passes (which skip them): L is
    ///   recomputed from q and k, and their dq and their contributions to dk and dv are the reference's
    ///   (docs/SEMANTICS.md). NaN in the inputs (or a NaN lse) makes NaN every gradient row it reaches.
    /// - Throws: `CPUAttentionError` when a count does not match or a parameter is out of range; nothing
    ///   is written then.
    ///
    /// Cost: 7/2 · `plan.effectiveFLOPs(batch:headDim:)` (seven products of 2 · headDim flops per attended
    /// pair: S and dP twice, dV, dK, dQ once), plus O(B · H · S · headDim) for Δ, spread over `threads`
    /// cores. Scratch: about 512 KiB per thread for headDim 128, plus 2 · B · H · S floats.
    public static func backward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int,
        q: UnsafeBufferPointer<T>, k: UnsafeBufferPointer<T>, v: UnsafeBufferPointer<T>,
        output: UnsafeBufferPointer<T>, lse: UnsafeBufferPointer<Float>, outputGradient: UnsafeBufferPointer<T>,
        dq: UnsafeMutableBufferPointer<Float>, dk: UnsafeMutableBufferPointer<Float>,
        dv: UnsafeMutableBufferPointer<Float>,
        scale: Float? = nil, textValid: [Int]? = nil, threads: Int? = nil
    ) throws(CPUAttentionError) {
        try validate(
            plan: plan, batch: batch, headDim: headDim, counts: (q.count, k.count, v.count, output.count),
            lseCount: lse.count, scale: scale, textValid: textValid, threads: threads)
        let elements = output.count
        for (name, count) in [
            ("outputGradient", outputGradient.count), ("dq", dq.count), ("dk", dk.count), ("dv", dv.count),
        ] where count != elements {
            throw .elementCountMismatch(what: name, expected: elements, actual: count)
        }
        guard let kind = StorageKind(T.self) else {
            // Another StorageScalar: compute in Float.
            let wide = [q, k, v, output, outputGradient].map { $0.map(\.floatValue) }
            wide[0].withUnsafeBytes { qp in
                wide[1].withUnsafeBytes { kp in
                    wide[2].withUnsafeBytes { vp in
                        wide[3].withUnsafeBytes { op in
                            wide[4].withUnsafeBytes { gp in
                                runBackward(
                                    plan: plan, batch: batch, headDim: headDim, kind: .float32,
                                    q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, output: op.baseAddress!,
                                    lse: lse.baseAddress!, outputGradient: gp.baseAddress!,
                                    dq: dq.baseAddress!, dk: dk.baseAddress!, dv: dv.baseAddress!,
                                    scale: scale, textValid: textValid, threads: threads)
                            }
                        }
                    }
                }
            }
            return
        }
        runBackward(
            plan: plan, batch: batch, headDim: headDim, kind: kind,
            q: UnsafeRawPointer(q.baseAddress!), k: UnsafeRawPointer(k.baseAddress!),
            v: UnsafeRawPointer(v.baseAddress!), output: UnsafeRawPointer(output.baseAddress!),
            lse: lse.baseAddress!, outputGradient: UnsafeRawPointer(outputGradient.baseAddress!),
            dq: dq.baseAddress!, dk: dk.baseAddress!, dv: dv.baseAddress!, scale: scale, textValid: textValid,
            threads: threads)
    }

    /// Convenience over arrays: returns dq, dk and dv ([batch, heads, S, headDim] each, fp32).
    public static func backward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int, q: [T], k: [T], v: [T], output: [T], lse: [Float],
        outputGradient: [T], scale: Float? = nil, textValid: [Int]? = nil, threads: Int? = nil
    ) throws(CPUAttentionError) -> (dq: [Float], dk: [Float], dv: [Float]) {
        let elements = batch * plan.heads * plan.layout.sequenceLength * headDim
        var dq = [Float](repeating: 0, count: max(0, elements))
        var dk = dq, dv = dq
        let result: Result<Void, CPUAttentionError> = q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    output.withUnsafeBufferPointer { op in
                        lse.withUnsafeBufferPointer { lp in
                            outputGradient.withUnsafeBufferPointer { gp in
                                dq.withUnsafeMutableBufferPointer { dqp in
                                    dk.withUnsafeMutableBufferPointer { dkp in
                                        dv.withUnsafeMutableBufferPointer { dvp in
                                            Result { () throws(CPUAttentionError) in
                                                try backward(
                                                    plan: plan, batch: batch, headDim: headDim, q: qp, k: kp, v: vp,
                                                    output: op, lse: lp, outputGradient: gp, dq: dqp, dk: dkp,
                                                    dv: dvp, scale: scale, textValid: textValid, threads: threads)
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
        try result.get()
        return (dq, dk, dv)
    }

    // MARK: Internals

    /// The validated core: Δ and L · log2 e per row, zeros for the silent rows, then the dK/dV pass and
    /// the dQ pass, each on `threads` workers pulling items from a shared atomic counter.
    static func runBackward(
        plan: AttentionPlan, batch: Int, headDim d: Int, kind: StorageKind,
        q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, output: UnsafeRawPointer,
        lse: UnsafePointer<Float>, outputGradient: UnsafeRawPointer,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        scale: Float?, textValid: [Int]? = nil, threads: Int?, chunk: Int = defaultKeyChunk,
        level: Int32 = sta_cpu_best_level()
    ) {
        let layout = plan.layout
        let s = layout.sequenceLength
        let batchHeads = batch * plan.heads
        let forwardSchedule = AttentionSchedule(plan: plan, batch: batch, textValid: textValid)
        let keySchedule = BackwardKeySchedule(plan: plan, batch: batch, forward: forwardSchedule)
        let scale = scale ?? 1 / Float(d).squareRoot()
        let log2e: Float = 1.442_695_040_888_963_4
        let threadCount = threads ?? defaultThreadCount

        // Rows that attend nothing and keys that nothing attends: zero gradients.
        for batchHead in 0..<batchHeads {
            for row in forwardSchedule.silentRows(batch: batchHead / plan.heads) {
                let offset = (batchHead * s + Int(row)) * d
                for gradient in [dq, dk, dv] { (gradient + offset).update(repeating: 0, count: d) }
            }
        }
        guard !forwardSchedule.attendingRows.isEmpty else { return }

        // Δ and L · log2 e of every attending row; +∞ marks rows whose lse is −∞ (they contribute nothing).
        let lseLog2 = UnsafeMutablePointer<Float>.allocate(capacity: batchHeads * s)
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: batchHeads * s)
        defer {
            lseLog2.deallocate()
            delta.deallocate()
        }
        forwardSchedule.attendingRows.withUnsafeBufferPointer { rows in
            // Each worker owns whole (batch, head) pairs: disjoint rows of lseLog2 and delta.
            nonisolated(unsafe) let shared = (rows.baseAddress!, lseLog2, delta, lse, output, outputGradient)
            let workers = max(1, min(threadCount, batchHeads))
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let (rows, lseLog2, delta, lse, output, outputGradient) = shared
                let outputRow = UnsafeMutablePointer<Float>.allocate(capacity: d)
                let gradientRow = UnsafeMutablePointer<Float>.allocate(capacity: d)
                defer {
                    outputRow.deallocate()
                    gradientRow.deallocate()
                }
                for batchHead in stride(from: worker, to: batchHeads, by: workers) {
                    for index in 0..<forwardSchedule.attendingCount(batch: batchHead / plan.heads) {
                        let row = batchHead * s + Int(rows[index])
                        // Rows that attend nothing, and rows done in float64 afterwards, contribute nothing here.
                        guard lse[row] != -.infinity, !needsExactBackward(lse[row]) else {
                            (lseLog2[row], delta[row]) = (.infinity, 0)
                            continue
                        }
                        kind.loadRow(from: output, offset: row * d, count: d, into: outputRow, level: level)
                        kind.loadRow(from: outputGradient, offset: row * d, count: d, into: gradientRow, level: level)
                        let total = sta_cpu_dot(level, outputRow, gradientRow, d)
                        (lseLog2[row], delta[row]) = (lse[row] * log2e, total)
                    }
                }
            }
        }

        // Rows whose lse fp32 cannot carry (+∞, or |lse| ≥ exactBackwardLSELimit), per (batch, head).
        var exactRows = [[Int32]](repeating: [], count: batchHeads)
        for batchHead in 0..<batchHeads {
            for index in 0..<forwardSchedule.attendingCount(batch: batchHead / plan.heads) {
                let position = forwardSchedule.attendingRows[index]
                if needsExactBackward(lse[batchHead * s + Int(position)]) { exactRows[batchHead].append(position) }
            }
        }

        forwardSchedule.attendingRows.withUnsafeBufferPointer { attendingRows in
            forwardSchedule.tileRealStart.withUnsafeBufferPointer { tileRealStart in
                plan.keyTileStart.withUnsafeBufferPointer { keyTileStart in
                    plan.keyTiles.withUnsafeBufferPointer { keyTiles in
                        keySchedule.queryTileStart.withUnsafeBufferPointer { queryTileStart in
                            keySchedule.queryTiles.withUnsafeBufferPointer { queryTiles in
                                forwardSchedule.textValid.withUnsafeBufferPointer { textValid in
                                    let job = BackwardJob(
                                        kind: kind, level: level, q: q, k: k, v: v, outputGradient: outputGradient,
                                        dq: dq, dk: dk, dv: dv, lseLog2: lseLog2, delta: delta,
                                        sequenceLength: s, headDim: d, scale: scale, scoreScale: scale * log2e,
                                        chunk: chunk, tileCount: layout.tileCount, heads: plan.heads,
                                        textStart: layout.paddedVideoTokenCount, textValid: textValid.baseAddress!,
                                        attendingRows: attendingRows.baseAddress!,
                                        realVideoCount: forwardSchedule.realVideoCount,
                                        tileRealStart: tileRealStart.baseAddress!,
                                        keyTileStart: keyTileStart.baseAddress!,
                                        keyTiles: keyTiles.baseAddress ?? tileRealStart.baseAddress!,
                                        queryTileStart: queryTileStart.baseAddress!,
                                        queryTiles: queryTiles.baseAddress ?? tileRealStart.baseAddress!,
                                        maximumListCount: max(
                                            forwardSchedule.maximumKeyCount,
                                            keySchedule.maximumQueryCount(forward: forwardSchedule)))
                                    runItems(job: job, items: keySchedule.items, threads: threadCount) {
                                        $0.runKeyItem($1)
                                    }
                                    runItems(job: job, items: forwardSchedule.items, threads: threadCount) {
                                        $0.runQueryItem($1)
                                    }
                                    runExactBackwardRows(
                                        exactRows, plan: plan, schedule: forwardSchedule, headDim: d, kind: kind,
                                        level: level, q: q, k: k, v: v, output: output, outputGradient: outputGradient,
                                        dq: dq, dk: dk, dv: dv, scale: scale, threads: threadCount)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body` on every item, on up to `threads` workers with one `BackwardWorker` (scratch) each.
    private static func runItems(
        job: BackwardJob, items: [WorkItem], threads: Int, _ body: (BackwardWorker, WorkItem) -> Void
    ) {
        let workers = min(threads, items.count)
        if workers <= 1 {
            let worker = BackwardWorker(job: job)
            for item in items { body(worker, item) }
            worker.deallocate()
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                let worker = BackwardWorker(job: job)
                while true {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard index < items.count else { break }
                    body(worker, items[index])
                }
                worker.deallocate()
            }
        }
    }
}
