import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACPUKernels

/// Per-row valid text lengths: one call over a batch whose rows have different text lengths.
@Suite struct CPUTextValidTests {
    /// A 3D canvas with holes (5×7×9 on 2×4×4 tiles) and 8 text tokens, two heads with different windows.
    static func plan(textValid: Int = 8) throws -> AttentionPlan {
        let layout = try STALayout(canvas: [5, 7, 9], tile: [2, 4, 4], textCount: 8, textValid: textValid)
        return try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [3, 1, 3])])
    }

    /// Rows [b] of a [batch, heads, S, D] (or [batch, heads, S] with d = 1) array.
    static func slice<T>(_ values: [T], batchRow b: Int, rowElements: Int) -> [T] {
        Array(values[(b * rowElements)..<((b + 1) * rowElements)])
    }

    static let d = 24

    @Test(arguments: [[3, 8], [0, 5], [8, 0]])
    func forwardMatchesTheReferenceAndPerRowPlans(textValid: [Int]) throws {
        let plan = try Self.plan()
        let (batch, d, s) = (textValid.count, Self.d, plan.layout.sequenceLength)
        let count = batch * plan.heads * s * d
        let q = randomValues(count, as: Float.self, seed: 41)
        let k = randomValues(count, as: Float.self, seed: 42)
        let v = randomValues(count, as: Float.self, seed: 43)
        let cpu = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, textValid: textValid, threads: 2)
        func wide(_ x: [Float]) -> [Double] { x.map(Double.init) }
        let reference = try ReferenceAttention.forward(
            q: wide(q), k: wide(k), v: wide(v), batch: batch, headDim: d, plan: plan, textValid: textValid)

        let rowElements = plan.heads * s * d
        for b in 0..<batch {
            let real = ReferenceAttention.realQueryMask(layout: plan.layout, textValid: textValid[b])
            var difference = 0.0, norm = 0.0
            for h in 0..<plan.heads {
                for i in 0..<s {
                    let row = (b * plan.heads + h) * s + i
                    if !real[i] {
                        // Holes and this row's padding text: nothing attended.
                        #expect(cpu.lse[row] == -.infinity && reference.lse[row] == -.infinity, "row \(row)")
                        #expect(cpu.output[(row * d)..<((row + 1) * d)].allSatisfy { $0 == 0 })
                        continue
                    }
                    #expect(abs(Double(cpu.lse[row]) - reference.lse[row]) < 1e-4, "lse of row \(row)")
                    for c in 0..<d {
                        let e = Double(cpu.output[row * d + c]) - reference.output[row * d + c]
                        difference += e * e
                        norm += reference.output[row * d + c] * reference.output[row * d + c]
                    }
                }
            }
            #expect((difference / norm).squareRoot() < 1e-5, "batch row \(b)")

            // The same call with a plan whose default text length is this row's gives the same numbers.
            let rowPlan = try Self.plan(textValid: textValid[b])
            let single = try CPUAttention.forward(
                plan: rowPlan, batch: 1, headDim: d, q: Self.slice(q, batchRow: b, rowElements: rowElements),
                k: Self.slice(k, batchRow: b, rowElements: rowElements),
                v: Self.slice(v, batchRow: b, rowElements: rowElements), threads: 2)
            #expect(single.output == Self.slice(cpu.output, batchRow: b, rowElements: rowElements))
            #expect(single.lse == Self.slice(cpu.lse, batchRow: b, rowElements: plan.heads * s))
        }
    }

    @Test(arguments: [[3, 8], [0, 5]])
    func backwardMatchesTheReferenceAndPerRowPlans(textValid: [Int]) throws {
        let plan = try Self.plan()
        let (batch, d, s) = (textValid.count, Self.d, plan.layout.sequenceLength)
        let count = batch * plan.heads * s * d
        let q = randomValues(count, as: Float.self, seed: 51)
        let k = randomValues(count, as: Float.self, seed: 52)
        let v = randomValues(count, as: Float.self, seed: 53)
        let dO = randomValues(count, as: Float.self, seed: 54)
        let forward = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, textValid: textValid, threads: 2)
        let cpu = try CPUAttention.backward(
            plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, output: forward.output, lse: forward.lse,
            outputGradient: dO, textValid: textValid, threads: 2)
        func wide(_ x: [Float]) -> [Double] { x.map(Double.init) }
        let referenceForward = try ReferenceAttention.forward(
            q: wide(q), k: wide(k), v: wide(v), batch: batch, headDim: d, plan: plan, textValid: textValid)
        let reference = try ReferenceAttention.backward(
            q: wide(q), k: wide(k), v: wide(v), output: referenceForward.output, lse: referenceForward.lse,
            outputGradient: wide(dO), batch: batch, headDim: d, plan: plan, textValid: textValid)

        let rowElements = plan.heads * s * d
        for (name, gradient, expected) in [
            ("dq", cpu.dq, reference.dq), ("dk", cpu.dk, reference.dk), ("dv", cpu.dv, reference.dv),
        ] {
            var difference = 0.0, norm = 0.0
            for i in 0..<count {
                let b = i / rowElements
                let real = ReferenceAttention.realQueryMask(layout: plan.layout, textValid: textValid[b])
                if !real[(i / d) % s] {
                    #expect(gradient[i] == 0 && expected[i] == 0, "\(name)[\(i)] of a silent row")
                }
                difference += (Double(gradient[i]) - expected[i]) * (Double(gradient[i]) - expected[i])
                norm += expected[i] * expected[i]
            }
            #expect((difference / norm).squareRoot() < 1e-5, "\(name)")
        }

        for b in 0..<batch {
            let rowPlan = try Self.plan(textValid: textValid[b])
            func row(_ x: [Float]) -> [Float] { Self.slice(x, batchRow: b, rowElements: rowElements) }
            let single = try CPUAttention.backward(
                plan: rowPlan, batch: 1, headDim: d, q: row(q), k: row(k), v: row(v), output: row(forward.output),
                lse: Self.slice(forward.lse, batchRow: b, rowElements: plan.heads * s), outputGradient: row(dO),
                threads: 2)
            #expect(single.dq == row(cpu.dq))
            #expect(single.dk == row(cpu.dk))
            #expect(single.dv == row(cpu.dv))
        }
    }

    @Test func sixteenBitStorageWithPerRowText() throws {
        let plan = try Self.plan()
        let (batch, d, s) = (2, 16, plan.layout.sequenceLength)
        let count = batch * plan.heads * s * d
        let q = randomValues(count, as: BFloat16.self, seed: 61)
        let k = randomValues(count, as: BFloat16.self, seed: 62)
        let v = randomValues(count, as: BFloat16.self, seed: 63)
        let cpu = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, textValid: [6, 1])
        let reference = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: batch, headDim: d, plan: plan, textValid: [6, 1])
        var difference = 0.0, norm = 0.0
        for i in 0..<count {
            let e = Double(cpu.output[i].floatValue) - reference.output[i]
            difference += e * e
            norm += reference.output[i] * reference.output[i]
        }
        #expect((difference / norm).squareRoot() < 1e-2)
    }

    @Test func rejectsBadTextLengths() throws {
        let plan = try Self.plan()
        let count = 2 * plan.heads * plan.layout.sequenceLength * 4
        let x = [Float](repeating: 0.5, count: count)
        #expect(throws: CPUAttentionError.textValidCountMismatch(count: 1, batch: 2)) {
            _ = try CPUAttention.forward(plan: plan, batch: 2, headDim: 4, q: x, k: x, v: x, textValid: [3])
        }
        #expect(throws: CPUAttentionError.textValidOutOfRange(row: 1, value: 9, textCount: 8)) {
            _ = try CPUAttention.forward(plan: plan, batch: 2, headDim: 4, q: x, k: x, v: x, textValid: [3, 9])
        }
        #expect(throws: CPUAttentionError.textValidOutOfRange(row: 0, value: -1, textCount: 8)) {
            _ = try CPUAttention.backward(
                plan: plan, batch: 2, headDim: 4, q: x, k: x, v: x, output: x,
                lse: [Float](repeating: 0, count: count / 4), outputGradient: x, textValid: [-1, 0])
        }
        #expect(CPUAttentionError.textValidOutOfRange(row: 1, value: 9, textCount: 8).description.contains("0...8"))
        #expect(CPUAttentionError.textValidCountMismatch(count: 1, batch: 2).description.contains("per batch row"))
    }
}
