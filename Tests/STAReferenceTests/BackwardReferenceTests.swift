import STAGeometry
import STATensors
import Testing
@testable import STAReference

/// The float64 backward pass checked against central finite differences of the forward's loss ⟨O, dO⟩.
@Suite struct BackwardReferenceTests {
    /// Inputs of one small problem: q [B, H, S, D], k and v [B, H_kv, S, D], dO like q.
    struct Case {
        let plan: AttentionPlan
        let batch: Int, keyValueHeads: Int, headDim: Int
        let q: [Double], k: [Double], v: [Double], outputGradient: [Double]

        init(plan: AttentionPlan, batch: Int, keyValueHeads: Int? = nil, headDim: Int, seed: UInt64) {
            let s = plan.layout.sequenceLength
            let keyValueHeads = keyValueHeads ?? plan.heads
            (self.plan, self.batch, self.keyValueHeads, self.headDim) = (plan, batch, keyValueHeads, headDim)
            let queryCount = batch * plan.heads * s * headDim, keyCount = batch * keyValueHeads * s * headDim
            q = randomValues(queryCount, seed: seed).map { $0 * 0.6 }
            k = randomValues(keyCount, seed: seed &+ 1).map { $0 * 0.6 }
            v = randomValues(keyCount, seed: seed &+ 2)
            outputGradient = randomValues(queryCount, seed: seed &+ 3)
        }

        func forward(q: [Double], k: [Double], v: [Double]) throws -> ReferenceAttention.Result {
            try ReferenceAttention.forward(
                q: q, k: k, v: v, batch: batch, headDim: headDim, plan: plan, keyValueHeads: keyValueHeads)
        }

        /// ⟨O, dO⟩ summed in a fixed order.
        func loss(q: [Double], k: [Double], v: [Double]) throws -> Double {
            let output = try forward(q: q, k: k, v: v).output
            var sum = 0.0
            for i in 0..<output.count { sum += output[i] * outputGradient[i] }
            return sum
        }

        func gradients(output: [Double]? = nil, outputGradient: [Double]? = nil) throws -> ReferenceAttention.Gradients {
            let forward = try forward(q: q, k: k, v: v)
            return try ReferenceAttention.backward(
                q: q, k: k, v: v, output: output ?? forward.output, lse: forward.lse,
                outputGradient: outputGradient ?? self.outputGradient, batch: batch, headDim: headDim, plan: plan,
                keyValueHeads: keyValueHeads)
        }

        /// Compares the analytic gradient of `input` (0 q, 1 k, 2 v) with central differences at `indices`;
        /// returns the largest difference relative to the largest gradient magnitude.
        func finiteDifferenceError(input: Int, analytic: [Double], indices: [Int]) throws -> Double {
            let step = 1e-5
            var inputs = [q, k, v]
            var worst = 0.0
            var largest = 0.0
            for index in indices {
                let original = inputs[input][index]
                inputs[input][index] = original + step
                let plus = try loss(q: inputs[0], k: inputs[1], v: inputs[2])
                inputs[input][index] = original - step
                let minus = try loss(q: inputs[0], k: inputs[1], v: inputs[2])
                inputs[input][index] = original
                let numeric = (plus - minus) / (2 * step)
                worst = max(worst, abs(numeric - analytic[index]))
                largest = max(largest, abs(numeric))
            }
            let error = worst / max(largest, 1e-300)
            return error.isNaN ? .infinity : error
        }
    }

    /// 1D canvas of 11 tokens in tiles of 2 (one hole), 3 text tokens of which 2 are valid, two windows.
    private func oneDimensionalPlan(heads: Int) throws -> AttentionPlan {
        let layout = try STALayout(canvas: [11], tile: [2], textCount: 3, textValid: 2)
        #expect(layout.hasHoles)
        let windows = (0..<heads).map { Window(tiles: [$0 % 2 == 0 ? 1 : 3]) }
        return try AttentionPlan(layout: layout, headWindows: windows)
    }

    @Test func everyGradientEntryMatchesFiniteDifferences1D() throws {
        let problem = Case(plan: try oneDimensionalPlan(heads: 2), batch: 2, headDim: 8, seed: 101)
        let gradients = try problem.gradients()
        for (input, analytic) in [gradients.dq, gradients.dk, gradients.dv].enumerated() {
            #expect(analytic.contains { $0 != 0 })
            let error = try problem.finiteDifferenceError(
                input: input, analytic: analytic, indices: Array(analytic.indices))
            #expect(error < 1e-6, "input \(input): relative error \(error)")
        }
    }

    @Test func groupedQueryHeadsSumKeyValueGradients() throws {
        let problem = Case(plan: try oneDimensionalPlan(heads: 4), batch: 1, keyValueHeads: 2, headDim: 8, seed: 111)
        let gradients = try problem.gradients()
        for (input, analytic) in [gradients.dq, gradients.dk, gradients.dv].enumerated() {
            let error = try problem.finiteDifferenceError(
                input: input, analytic: analytic, indices: Array(analytic.indices))
            #expect(error < 1e-6, "input \(input): relative error \(error)")
        }
    }

    /// 3D canvas with holes on every axis, padded text and a window per head; a sample of entries (the
    /// problem is too large to difference whole in a debug build), which includes hole and text rows.
    @Test func sampledGradientsMatchFiniteDifferences3D() throws {
        let layout = try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4], textCount: 5, textValid: 3)
        let plan = try AttentionPlan(
            layout: layout,
            headWindows: [Window(tiles: [1, 1, 1]), Window(tiles: [1, 3, 1]), Window(tiles: [2, 1, 2])])
        let problem = Case(plan: plan, batch: 1, headDim: 4, seed: 121)
        let gradients = try problem.gradients()
        let s = layout.sequenceLength
        var rng = SplitMix64(seed: 7)
        for (input, analytic) in [gradients.dq, gradients.dk, gradients.dv].enumerated() {
            // Random entries, plus every entry of the first hole row and of the text rows of head 1.
            var indices = (0..<60).map { _ in Int.random(in: 0..<analytic.count, using: &rng) }
            let hole = try #require(ReferenceAttention.realQueryMask(layout: layout).firstIndex(of: false))
            indices += (hole * 4)..<(hole * 4 + 4)
            indices += ((s + layout.paddedVideoTokenCount) * 4)..<(2 * s * 4)
            let error = try problem.finiteDifferenceError(input: input, analytic: analytic, indices: indices)
            #expect(error < 1e-6, "input \(input): relative error \(error)")
        }
    }

    @Test func silentRowsAndKeysGetZeroAndTheirOutputsAreNeverRead() throws {
        let layout = try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4], textCount: 5, textValid: 3)
        let plan = try AttentionPlan(layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [2, 1, 2])])
        let problem = Case(plan: plan, batch: 2, headDim: 4, seed: 131)
        let gradients = try problem.gradients()
        let real = ReferenceAttention.realQueryMask(layout: layout)
        let (s, d) = (layout.sequenceLength, 4)
        // Poison O and dO of the rows that attend nothing: the result must not change at all.
        let forward = try problem.forward(q: problem.q, k: problem.k, v: problem.v)
        var output = forward.output, outputGradient = problem.outputGradient
        for row in 0..<(2 * plan.heads * s) where !real[row % s] {
            for c in 0..<d { (output[row * d + c], outputGradient[row * d + c]) = (.nan, .nan) }
        }
        let poisoned = try problem.gradients(output: output, outputGradient: outputGradient)
        #expect(poisoned.dq == gradients.dq)
        #expect(poisoned.dk == gradients.dk)
        #expect(poisoned.dv == gradients.dv)
        for row in 0..<(2 * plan.heads * s) {
            let values = (row * d)..<((row + 1) * d)
            if real[row % s] {
                #expect(gradients.dq[values].contains { $0 != 0 })
                #expect(gradients.dk[values].contains { $0 != 0 })
            } else {
                #expect(gradients.dq[values].allSatisfy { $0 == 0 }, "row \(row)")
                #expect(gradients.dk[values].allSatisfy { $0 == 0 }, "row \(row)")
                #expect(gradients.dv[values].allSatisfy { $0 == 0 }, "row \(row)")
            }
        }
    }

    @Test func storageTypesConvertExactly() throws {
        let plan = try oneDimensionalPlan(heads: 2)
        let count = 2 * plan.layout.sequenceLength * 8
        let q = randomValues(count, seed: 141).map { Float16($0) }
        let k = randomValues(count, seed: 142).map { Float16($0) }
        let v = randomValues(count, seed: 143).map { Float16($0) }
        let dO = randomValues(count, seed: 144).map { Float16($0) }
        let forward = try ReferenceAttention.forward(q: q, k: k, v: v, batch: 1, headDim: 8, plan: plan)
        let output = forward.output.map { Float16($0) }
        let lse = forward.lse.map { Float($0) }
        let typed = try ReferenceAttention.backward(
            q: q, k: k, v: v, output: output, lse: lse, outputGradient: dO, batch: 1, headDim: 8, plan: plan)
        func wide(_ values: [Float16]) -> [Double] { values.map { Double($0) } }
        let wideResult = try ReferenceAttention.backward(
            q: wide(q), k: wide(k), v: wide(v), output: wide(output), lse: lse.map { Double($0) },
            outputGradient: wide(dO), batch: 1, headDim: 8, plan: plan)
        #expect(typed.dq == wideResult.dq)
        #expect(typed.dk == wideResult.dk)
        #expect(typed.dv == wideResult.dv)
    }

    @Test func rejectsBadInputs() throws {
        let plan = try oneDimensionalPlan(heads: 2)
        let count = 2 * plan.layout.sequenceLength * 4
        let x = randomValues(count, seed: 151)
        let lse = [Double](repeating: 0, count: 2 * plan.layout.sequenceLength)
        #expect(throws: ReferenceError.elementCountMismatch(input: "lse", expected: lse.count, actual: lse.count - 1)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: Array(lse.dropLast()), outputGradient: x, batch: 1, headDim: 4,
                plan: plan)
        }
        #expect(throws: ReferenceError.elementCountMismatch(input: "outputGradient", expected: count, actual: count + 1)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: lse, outputGradient: x + [0], batch: 1, headDim: 4, plan: plan)
        }
        #expect(throws: ReferenceError.headsNotMultipleOfKeyValueHeads(heads: 2, keyValueHeads: 3)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: lse, outputGradient: x, batch: 1, headDim: 4, plan: plan,
                keyValueHeads: 3)
        }
        #expect(throws: ReferenceError.nonFiniteScale(.infinity)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: lse, outputGradient: x, batch: 1, headDim: 4, plan: plan, scale: .infinity)
        }
        #expect(throws: ReferenceError.nonPositiveSize(name: "batch", value: 0)) {
            _ = try ReferenceAttention.backward(
                q: x, k: x, v: x, output: x, lse: lse, outputGradient: x, batch: 0, headDim: 4, plan: plan)
        }
    }
}
