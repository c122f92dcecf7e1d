import STAGeometry
import STATensors
import Testing
@testable import STAReference

/// The reference with a valid text length per batch row.
@Suite struct TextValidReferenceTests {
    private func plan(textValid: Int = 5) throws -> AttentionPlan {
        let layout = try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4], textCount: 5, textValid: textValid)
        return try AttentionPlan(layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [2, 1, 2])])
    }

    private func row(_ x: [Double], _ b: Int, _ size: Int) -> [Double] { Array(x[(b * size)..<((b + 1) * size)]) }

    @Test func eachBatchRowEqualsItsOwnPlanAndThePredicate() throws {
        let plan = try plan()
        let textValid = [2, 5, 0]
        let (batch, heads, s, d) = (3, plan.heads, plan.layout.sequenceLength, 4)
        let count = batch * heads * s * d
        let (q, k, v) = (randomValues(count, seed: 71), randomValues(count, seed: 72), randomValues(count, seed: 73))
        let result = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: batch, headDim: d, plan: plan, textValid: textValid)
        let size = heads * s * d
        for b in 0..<batch {
            let rowPlan = try self.plan(textValid: textValid[b])
            let single = try ReferenceAttention.forward(
                q: row(q, b, size), k: row(k, b, size), v: row(v, b, size), batch: 1, headDim: d, plan: rowPlan)
            #expect(single.output == row(result.output, b, size))
            #expect(single.lse == row(result.lse, b, heads * s))
            let predicate = try ReferenceAttention.forward(
                q: row(q, b, size), k: row(k, b, size), v: row(v, b, size), batch: 1, heads: heads,
                sequenceLength: s, headDim: d
            ) { rowPlan.allows(head: $0, query: $1, key: $2) }
            #expect(predicate.output == single.output)
            // Padding text rows attend nothing.
            let video = plan.layout.paddedVideoTokenCount
            for h in 0..<heads {
                for t in 0..<plan.layout.text.count {
                    let lse = result.lse[(b * heads + h) * s + video + t]
                    #expect((lse == -.infinity) == (t >= textValid[b]), "batch \(b) head \(h) text \(t)")
                }
            }
        }
        // The rows really differ: the default (5 for every row) gives other numbers for row 0.
        let defaults = try ReferenceAttention.forward(q: q, k: k, v: v, batch: batch, headDim: d, plan: plan)
        #expect(row(defaults.output, 0, size) != row(result.output, 0, size))
    }

    @Test func backwardEachBatchRowEqualsItsOwnPlan() throws {
        let plan = try plan()
        let textValid = [1, 4]
        let (batch, heads, s, d) = (2, plan.heads, plan.layout.sequenceLength, 3)
        let count = batch * heads * s * d
        let (q, k, v) = (randomValues(count, seed: 81), randomValues(count, seed: 82), randomValues(count, seed: 83))
        let dO = randomValues(count, seed: 84)
        let forward = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: batch, headDim: d, plan: plan, textValid: textValid)
        let gradients = try ReferenceAttention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, batch: batch,
            headDim: d, plan: plan, textValid: textValid)
        let size = heads * s * d
        let video = plan.layout.paddedVideoTokenCount
        for b in 0..<batch {
            let rowPlan = try self.plan(textValid: textValid[b])
            let single = try ReferenceAttention.backward(
                q: row(q, b, size), k: row(k, b, size), v: row(v, b, size), output: row(forward.output, b, size),
                lse: row(forward.lse, b, heads * s), outputGradient: row(dO, b, size), batch: 1, headDim: d,
                plan: rowPlan)
            #expect(single.dq == row(gradients.dq, b, size))
            #expect(single.dk == row(gradients.dk, b, size))
            #expect(single.dv == row(gradients.dv, b, size))
            // Padding text keys and queries: zero gradients.
            for h in 0..<heads {
                for t in textValid[b]..<plan.layout.text.count {
                    let base = ((b * heads + h) * s + video + t) * d
                    for gradient in [gradients.dq, gradients.dk, gradients.dv] {
                        #expect(gradient[base..<(base + d)].allSatisfy { $0 == 0 })
                    }
                }
            }
        }
    }

    @Test func rejectsBadTextLengths() throws {
        let plan = try plan()
        let count = 2 * plan.heads * plan.layout.sequenceLength * 2
        let x = [Double](repeating: 0.25, count: count)
        #expect(throws: ReferenceError.textValidCountMismatch(count: 3, batch: 2)) {
            _ = try ReferenceAttention.forward(q: x, k: x, v: x, batch: 2, headDim: 2, plan: plan, textValid: [1, 2, 3])
        }
        #expect(throws: ReferenceError.textValidOutOfRange(row: 0, value: 6, textCount: 5)) {
            _ = try ReferenceAttention.forward(q: x, k: x, v: x, batch: 2, headDim: 2, plan: plan, textValid: [6, 2])
        }
        #expect(throws: ReferenceError.textValidOutOfRange(row: 1, value: -2, textCount: 5)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: [Double](repeating: 0, count: count / 2), outputGradient: x,
                batch: 2, headDim: 2, plan: plan, textValid: [0, -2])
        }
        #expect(ReferenceError.textValidOutOfRange(row: 0, value: 6, textCount: 5).description.contains("0...5"))
    }
}
