import Foundation
import STAGeometry
import STATensors
import Testing
@testable import STAReference

@Suite struct PlanReferenceTests {
    /// A 3D canvas whose axes the tile does not divide (holes), with padded text, and a different window
    /// per head.
    private func holeyPlan() throws -> AttentionPlan {
        let layout = try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4], textCount: 5, textValid: 3)
        #expect(layout.hasHoles)
        return try AttentionPlan(
            layout: layout,
            headWindows: [Window(tiles: [1, 1, 1]), Window(tiles: [1, 3, 1]), Window(tiles: [2, 1, 2])])
    }

    @Test func planFormEqualsPredicateForm() throws {
        let plan = try holeyPlan()
        let (batch, heads, s, d) = (2, plan.heads, plan.layout.sequenceLength, 4)
        let q = randomValues(batch * heads * s * d, seed: 11)
        let k = randomValues(batch * heads * s * d, seed: 12)
        let v = randomValues(batch * heads * s * d, seed: 13)
        let fromPlan = try ReferenceAttention.forward(q: q, k: k, v: v, batch: batch, headDim: d, plan: plan)
        let fromPredicate = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: batch, heads: heads, sequenceLength: s, headDim: d
        ) { plan.allows(head: $0, query: $1, key: $2) }
        // Same keys in the same ascending order: the arithmetic is identical.
        #expect(fromPlan.output == fromPredicate.output)
        #expect(fromPlan.lse == fromPredicate.lse)
        // Windows differ per head, so heads see different keys.
        #expect(fromPlan.output[0..<(s * d)] != fromPlan.output[(s * d)..<(2 * s * d)])
    }

    @Test func rowsWithoutKeysAreZeroWithMinusInfinityLSE() throws {
        let plan = try holeyPlan()
        let layout = plan.layout
        let (batch, heads, s, d) = (1, plan.heads, layout.sequenceLength, 3)
        let q = randomValues(heads * s * d, seed: 21)
        let k = randomValues(heads * s * d, seed: 22)
        let v = randomValues(heads * s * d, seed: 23)
        let result = try ReferenceAttention.forward(q: q, k: k, v: v, batch: batch, headDim: d, plan: plan)
        let mask = ReferenceAttention.realQueryMask(layout: layout)
        #expect(mask.count == s)
        #expect(mask.filter { $0 }.count == layout.videoTokenCount + layout.text.valid)
        for h in 0..<heads {
            for i in 0..<s {
                let row = h * s + i
                let outputRow = result.output[(row * d)..<((row + 1) * d)]
                if mask[i] {
                    #expect(result.lse[row].isFinite)
                    #expect(outputRow.contains { $0 != 0 })
                } else {
                    #expect(result.lse[row] == -.infinity, "head \(h) row \(i)")
                    #expect(outputRow.allSatisfy { $0 == 0 }, "head \(h) row \(i)")
                }
            }
        }
    }

    @Test func hostTensorFormAndGroupedQueryHeads() throws {
        let layout = try STALayout(canvas: [6, 8], tile: [2, 4], textCount: 2)
        let plan = try AttentionPlan(layout: layout, headWindows: [Window(tiles: [1, 1]), Window(tiles: [3, 1]), Window(tiles: [1, 2]), Window(tiles: [3, 2])])
        let (batch, s, d) = (1, layout.sequenceLength, 4)
        let q = randomValues(4 * s * d, seed: 31).map { BFloat16(Float($0)) }
        let kv = randomValues(2 * s * d, seed: 32).map { BFloat16(Float($0)) }
        let grouped = try ReferenceAttention.forward(
            q: HostTensor(shape: [batch, 4, s, d], values: q),
            k: HostTensor(shape: [batch, 2, s, d], values: kv),
            v: HostTensor(shape: [batch, 2, s, d], values: kv), plan: plan)
        // The same as repeating each key/value head for its two query heads.
        let perHead = s * d
        var expanded = [BFloat16]()
        for h in 0..<4 { expanded += kv[((h / 2) * perHead)..<((h / 2 + 1) * perHead)] }
        let repeated = try ReferenceAttention.forward(q: q, k: expanded, v: expanded, batch: batch, headDim: d, plan: plan)
        #expect(grouped.output == repeated.output)
        #expect(grouped.lse == repeated.lse)
        #expect(throws: ReferenceError.shapeMismatch(input: "v", expected: [1, 2, s, d], actual: [1, 2, s, d - 1])) {
            try ReferenceAttention.forward(
                q: HostTensor(shape: [batch, 4, s, d], values: q), k: HostTensor(shape: [batch, 2, s, d], values: kv),
                v: HostTensor(shape: [batch, 2, s, d - 1], values: Array(kv.prefix(2 * s * (d - 1)))), plan: plan)
        }
        #expect(throws: ReferenceError.headsNotMultipleOfKeyValueHeads(heads: 4, keyValueHeads: 3)) {
            try ReferenceAttention.forward(
                q: q, k: kv + kv[0..<perHead], v: kv + kv[0..<perHead], batch: 1, headDim: d, plan: plan, keyValueHeads: 3)
        }
    }

    /// A 32×32 image canvas with D = 64: checked against keys derived here from the window rule of spec §2.
    @Test func imageCanvasMatchesTheWindowRule() throws {
        let layout = try STALayout(canvas: [32, 32], tile: [8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 3]), heads: 1)
        let (s, d) = (layout.sequenceLength, 64)
        let q = randomValues(s * d, seed: 41), k = randomValues(s * d, seed: 42), v = randomValues(s * d, seed: 43)
        let clock = ContinuousClock()
        var result: ReferenceAttention.Result = ([], [])
        let elapsed = try clock.measure {
            result = try ReferenceAttention.forward(q: q, k: k, v: v, batch: 1, headDim: d, plan: plan)
        }
        #expect(elapsed < .seconds(5), "the reference took \(elapsed)")
        // Independent rule: tile grid 4×4, window radius 1, centres clamped to 1...2.
        func tile(_ index: Int) -> (Int, Int) { let t = index / 64; return (t / 4, t % 4) }
        func allowed(_ query: Int, _ key: Int) -> Bool {
            let (qy, qx) = tile(query), (ky, kx) = tile(key)
            return abs(min(max(qy, 1), 2) - ky) <= 1 && abs(min(max(qx, 1), 2) - kx) <= 1
        }
        var rng = SplitMix64(seed: 44)
        for _ in 0..<24 {
            let i = Int.random(in: 0..<s, using: &rng)
            let keys = (0..<s).filter { allowed(i, $0) }
            #expect(keys.count == 9 * 64)
            let scores = keys.map { j in (0..<d).reduce(0.0) { $0 + q[i * d + $1] * k[j * d + $1] } / 8 }
            let weights = scores.map { Foundation.exp($0) }
            let total = weights.reduce(0, +)
            let expected = (0..<d).map { x in zip(keys, weights).reduce(0.0) { $0 + $1.1 / total * v[$1.0 * d + x] } }
            let row = Array(result.output[(i * d)..<((i + 1) * d)])
            #expect(AttentionAccuracy.relativeError(row, reference: expected) < 1e-12, "row \(i)")
            #expect(abs(result.lse[i] - Foundation.log(total)) < 1e-12, "row \(i)")
        }
    }
}
