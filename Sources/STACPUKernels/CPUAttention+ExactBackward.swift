import Dispatch
import STAGeometry

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CPUAttention {
    /// |lse| from which the backward does a row in float64: fp32 holds L only to 2⁻⁹ there, so
    /// P = exp(s − L) recomputed from the stored L would be off by more than the bf16 resolution, and far
    /// past it (scores of 1e20) it is garbage.
    public static let exactBackwardLSELimit: Float = 32768

    /// Whether the backward does the row with log-sum-exp `lse` in float64: +∞ (a forward whose lse passed
    /// the fp32 range) or a finite |lse| ≥ `exactBackwardLSELimit`. −∞ (the row attends nothing) and NaN
    /// (NaN inputs: the fp32 passes carry the NaN to every gradient the row touches) are not.
    @inline(__always)
    static func needsExactBackward(_ lse: Float) -> Bool {
        lse == .infinity || (lse.isFinite && abs(lse) >= exactBackwardLSELimit)
    }

    /// The float64 part of the backward: the gradients of the query rows `rows` (per batch · head, sequence
    /// positions) whose lse fp32 cannot carry, which the fp32 passes skipped (they saw L = +∞, P = 0).
    ///
    /// For such a row i, with its keys j, it recomputes what the reference computes, in `Double`:
    /// L = log Σ_j exp(s_j) from the scores s_j = scale · q_i·k_j (max first), P_j = exp(s_j − L),
    /// Δ = dO_i·O_i, dS_j = P_j · (dO_i·v_j − Δ); it writes dq_i = scale · Σ_j dS_j k_j and adds
    /// scale · dS_j q_i to dk_j and P_j dO_i to dv_j (rounded to Float once per row and key). A row whose
    /// scores are undefined (NaN or ±∞ in its q, NaN in an attended k, a +∞ score, or every score −∞) gets
    /// NaN in dq_i and in dk_j, dv_j of every key it attends, as the reference gives with a NaN lse.
    ///
    /// Workers own whole (batch, head) pairs, so no two threads touch one dk or dv row. Must run after the
    /// fp32 passes (they overwrite dk and dv). Cost: about 8 · keys · headDim Double operations per row.
    static func runExactBackwardRows(
        _ rows: [[Int32]], plan: AttentionPlan, schedule: AttentionSchedule, headDim d: Int, kind: StorageKind,
        level: Int32, q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, output: UnsafeRawPointer,
        outputGradient: UnsafeRawPointer, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
        dv: UnsafeMutablePointer<Float>, scale: Float, threads: Int
    ) {
        let owners = rows.indices.filter { !rows[$0].isEmpty }
        guard !owners.isEmpty else { return }
        let layout = plan.layout
        let s = layout.sequenceLength
        let video = layout.paddedVideoTokenCount
        let scale = Double(scale)
        nonisolated(unsafe) let shared = (q, k, v, output, outputGradient, dq, dk, dv)
        let workers = max(1, min(threads, owners.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let (q, k, v, output, outputGradient, dq, dk, dv) = shared
            let row = UnsafeMutablePointer<Float>.allocate(capacity: 4 * d)
            defer { row.deallocate() }
            let query = row, gradient = row + d, other = row + 2 * d, scratch = row + 3 * d
            var keys = [Int]()
            var scores = [Double]()
            var accumulator = [Double](repeating: 0, count: d)
            for owner in stride(from: worker, to: owners.count, by: workers) {
                let batchHead = owners[owner]
                let (batch, head) = (batchHead / plan.heads, batchHead % plan.heads)
                let headBase = batchHead * s
                let textValid = Int(schedule.textValid[batch])
                for position in rows[batchHead].map(Int.init) {
                    // The row's keys, in the forward's order.
                    keys.removeAll(keepingCapacity: true)
                    if position < video {
                        let set = Int(plan.windowIndexByHead[head]) * layout.tileCount + position / layout.tileVolume
                        for slot in Int(plan.keyTileStart[set])..<Int(plan.keyTileStart[set + 1]) {
                            let tile = Int(plan.keyTiles[slot])
                            for index in Int(schedule.tileRealStart[tile])..<Int(schedule.tileRealStart[tile + 1]) {
                                keys.append(Int(schedule.attendingRows[index]))
                            }
                        }
                    } else {
                        keys += schedule.attendingRows[0..<schedule.realVideoCount].map(Int.init)
                    }
                    keys += video..<(video + textValid)

                    let i = headBase + position
                    kind.loadRow(from: q, offset: i * d, count: d, into: query, level: level)
                    kind.loadRow(from: outputGradient, offset: i * d, count: d, into: gradient, level: level)
                    kind.loadRow(from: output, offset: i * d, count: d, into: other, level: level)
                    var delta = 0.0
                    for c in 0..<d { delta += Double(gradient[c]) * Double(other[c]) }

                    // Scores and L, maximum first.
                    scores.removeAll(keepingCapacity: true)
                    var maximum = -Double.infinity
                    var poisoned = false
                    for key in keys {
                        kind.loadRow(from: k, offset: (headBase + key) * d, count: d, into: other, level: level)
                        var dot = 0.0
                        for c in 0..<d { dot += Double(query[c]) * Double(other[c]) }
                        let score = scale * dot
                        if score.isNaN { poisoned = true }
                        maximum = max(maximum, score)
                        scores.append(score)
                    }
                    poisoned = poisoned || !maximum.isFinite
                    var sum = 0.0
                    for score in scores { sum += exp(score - maximum) }
                    let logSum = maximum + log(sum)

                    for c in 0..<d { accumulator[c] = 0 }
                    for (index, key) in keys.enumerated() {
                        let offset = (headBase + key) * d
                        if poisoned {
                            (dk + offset).update(repeating: .nan, count: d)
                            (dv + offset).update(repeating: .nan, count: d)
                            continue
                        }
                        let p = exp(scores[index] - logSum)
                        kind.loadRow(from: v, offset: offset, count: d, into: other, level: level)
                        var dP = 0.0
                        for c in 0..<d { dP += Double(gradient[c]) * Double(other[c]) }
                        let dS = p * (dP - delta)
                        for c in 0..<d { dv[offset + c] += Float(p * Double(gradient[c])) }
                        for c in 0..<d { dk[offset + c] += Float(scale * dS * Double(query[c])) }
                        kind.loadRow(from: k, offset: offset, count: d, into: scratch, level: level)
                        for c in 0..<d { accumulator[c] += dS * Double(scratch[c]) }
                    }
                    for c in 0..<d { dq[i * d + c] = poisoned ? .nan : Float(scale * accumulator[c]) }
                }
            }
        }
    }
}
