import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACPUKernels

/// Large finite inputs in the backward pass (docs/SEMANTICS.md): rows whose log-sum-exp fp32 cannot carry
/// (+∞, or |lse| ≥ `exactBackwardLSELimit`) get the float64 reference's gradients, never zeros or fp32
/// garbage, and the other rows are unaffected.
@Suite struct CPUBackwardLargeInputTests {
    /// 1D canvas of 32 tokens in tiles of 8, window 1 (each token attends its own tile), 4 text tokens.
    static func plan() throws -> AttentionPlan {
        let layout = try STALayout(canvas: [32], tile: [8], textCount: 4, textValid: 4)
        return try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: 1)
    }

    static let d = 16

    /// Inputs with a few rows of magnitude `query` (q rows 3, 20 and text row 33) aimed at two identical
    /// keys 4 and 5 (tile 0) of magnitude `key`, and a large key 12 (tile 1): q row 3 splits its weight
    /// between keys 4 and 5 (so its dq and their dk are not zero), the text row and the rows of tile 1
    /// that score key 12 positively have huge scores, the others score it hugely negative (weight 0).
    static func inputs(query: Float, key: Float) -> (q: [Float], k: [Float], v: [Float], dO: [Float]) {
        let s = 36, d = Self.d
        var q = randomValues(s * d, as: Float.self, seed: 301)
        var k = randomValues(s * d, as: Float.self, seed: 302)
        let v = randomValues(s * d, as: Float.self, seed: 303)
        let dO = randomValues(s * d, as: Float.self, seed: 304)
        for c in 0..<d {
            q[3 * d + c] = query
            q[20 * d + c] = query * (c % 2 == 0 ? 1 : -0.5)
            q[33 * d + c] = query * 0.75
            k[4 * d + c] = key
            k[5 * d + c] = key
            k[12 * d + c] *= key
        }
        return (q, k, v, dO)
    }

    /// The CPU forward then backward in `T`, against the float64 reference backward given the CPU's output
    /// with L recomputed from the scores (a stored L, even in Double, cannot carry scores of 1e20). Every
    /// gradient row must be within 1e-4 of the reference row's norm (or of 1e-2 for rows near 0).
    func check<T: StorageScalar>(query: Float, key: Float, as _: T.Type, expectInfiniteLSE: Bool) throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        let wide = Self.inputs(query: query, key: key)
        let (q, k, v, dO) = (wide.q.map(T.init), wide.k.map(T.init), wide.v.map(T.init), wide.dO.map(T.init))
        let forward = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, threads: 2)
        #expect(forward.lse[3] == .infinity || abs(forward.lse[3]) >= CPUAttention.exactBackwardLSELimit)
        #expect(forward.lse[3].isInfinite == expectInfiniteLSE, "lse of row 3 is \(forward.lse[3])")
        let gradients = try CPUAttention.backward(
            plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, output: forward.output, lse: forward.lse,
            outputGradient: dO, threads: 2)

        func doubles(_ values: [T]) -> [Double] { values.map { Double($0.floatValue) } }
        let reference = try ReferenceAttention.backward(
            q: doubles(q), k: doubles(k), v: doubles(v), output: doubles(forward.output), outputGradient: doubles(dO),
            batch: 1, headDim: d, plan: plan)
        #expect(reference.dq.allSatisfy { $0.isFinite } && reference.dk.allSatisfy { $0.isFinite })

        for (name, cpu, expected) in [
            ("dq", gradients.dq, reference.dq), ("dk", gradients.dk, reference.dk), ("dv", gradients.dv, reference.dv),
        ] {
            for row in 0..<s {
                var difference = 0.0, norm = 0.0
                for c in 0..<d {
                    let e = Double(cpu[row * d + c]) - expected[row * d + c]
                    difference += e.isNaN ? .infinity : e * e
                    norm += expected[row * d + c] * expected[row * d + c]
                }
                let error = difference.squareRoot() / max(norm.squareRoot(), 1e-2)
                #expect(error < 1e-4, "\(T.self) q×\(query) k×\(key): \(name) row \(row), relative error \(error)")
            }
        }
        // Row 3 splits its weight between keys 4 and 5: its dq and their dk, dv are not zero.
        #expect(gradients.dq[(3 * d)..<(4 * d)].contains { $0 != 0 })
        #expect(gradients.dk[(4 * d)..<(5 * d)].contains { $0 != 0 })
        #expect(gradients.dv[(5 * d)..<(6 * d)].contains { $0 != 0 })
    }

    /// Scores of about 1e20 (finite in fp32, |lse| far past the limit): the stored L is useless to fp32.
    @Test func scoresOf1e20MatchTheReference() throws {
        try check(query: 1e20, key: 2, as: Float.self, expectInfiniteLSE: false)
        try check(query: 1e20, key: 2, as: BFloat16.self, expectInfiniteLSE: false)
    }

    /// Scores of about 1e40 (past fp32: the forward's lse saturates to +∞), from inputs of 1e30 and 1e10.
    @Test func scoresPastTheFloatRangeMatchTheReference() throws {
        try check(query: 1e30, key: 2e10, as: Float.self, expectInfiniteLSE: true)
        try check(query: 1e30, key: 2e10, as: BFloat16.self, expectInfiniteLSE: true)
    }

    /// The limit is the documented one, and the rows below it stay on the fp32 path.
    @Test func onlyRowsPastTheLimitAreRecomputed() {
        #expect(CPUAttention.needsExactBackward(.infinity))
        #expect(CPUAttention.needsExactBackward(32768))
        #expect(CPUAttention.needsExactBackward(-1e20))
        #expect(!CPUAttention.needsExactBackward(32767))
        #expect(!CPUAttention.needsExactBackward(-.infinity))
        #expect(!CPUAttention.needsExactBackward(.nan))
        #expect(!CPUAttention.needsExactBackward(3.5))
    }

    /// NaN in a q row still reaches exactly the gradients that row touches, as NaN (the fp32 passes carry
    /// it): its dq, and dk, dv of the keys of its tile and of the text; no other row.
    @Test func nanInAQueryRowReachesItsGradients() throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        let inputs = Self.inputs(query: 1, key: 1)
        var q = inputs.q
        let (k, v, dO) = (inputs.k, inputs.v, inputs.dO)
        q[9 * d + 2] = .nan
        let forward = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, threads: 2)
        let gradients = try CPUAttention.backward(
            plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, output: forward.output, lse: forward.lse,
            outputGradient: dO, threads: 2)
        for row in 0..<s {
            let touched = plan.allows(head: 0, query: 9, key: row)
            for (name, gradient, expectNaN) in [
                ("dq", gradients.dq, row == 9), ("dk", gradients.dk, touched), ("dv", gradients.dv, touched),
            ] {
                let values = gradient[(row * d)..<((row + 1) * d)]
                if expectNaN {
                    #expect(values.allSatisfy { $0.isNaN }, "\(name) row \(row) is not NaN")
                } else {
                    #expect(values.allSatisfy { $0.isFinite }, "\(name) row \(row) is not finite")
                }
            }
        }
    }
}
