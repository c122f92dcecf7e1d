import STACPUKernelsC
import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACPUKernels

/// The non-finite contract (docs/SEMANTICS.md): NaN and infinities reach exactly the rows that use them,
/// as whole NaN rows (never zeros), and large finite inputs give the float64 reference's numbers.
@Suite struct CPUNonFiniteTests {
    /// 1D canvas of 32 tokens in tiles of 8 with window 1 (each token attends its own tile) plus 4 text
    /// tokens: a poisoned video key reaches its tile's rows and the text rows, no other.
    static func plan() throws -> AttentionPlan {
        let layout = try STALayout(canvas: [32], tile: [8], textCount: 4, textValid: 4)
        return try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: 1)
    }

    static let d = 16

    /// Runs forward with element `index` (a row-major position in [1, 1, S, d]) of `tensor` set to `value`,
    /// and checks every row: rows that use the poisoned row are NaN in full with NaN lse, the others equal
    /// the clean run exactly.
    func checkPoison<T: StorageScalar>(
        _ tensor: String, row poisonedRow: Int, value: Float, as _: T.Type
    ) throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        var q = randomValues(s * d, as: T.self, seed: 91)
        var k = randomValues(s * d, as: T.self, seed: 92)
        var v = randomValues(s * d, as: T.self, seed: 93)
        let clean = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, threads: 2)
        let index = poisonedRow * d + 3
        switch tensor {
        case "q": q[index] = T(value)
        case "k": k[index] = T(value)
        default: v[index] = T(value)
        }
        let poisoned = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, threads: 2)
        var poisonedRows = 0
        for row in 0..<s {
            let uses = tensor == "q" ? row == poisonedRow : plan.allows(head: 0, query: row, key: poisonedRow)
            let output = poisoned.output[(row * d)..<((row + 1) * d)]
            if uses {
                poisonedRows += 1
                #expect(output.allSatisfy { $0.floatValue.isNaN }, "\(tensor) = \(value): row \(row) is not all NaN")
                #expect(poisoned.lse[row].isNaN, "\(tensor) = \(value): lse of row \(row)")
            } else {
                #expect(
                    output.map(\.floatValue) == clean.output[(row * d)..<((row + 1) * d)].map(\.floatValue),
                    "row \(row) changed")
                #expect(poisoned.lse[row] == clean.lse[row])
            }
        }
        #expect(poisonedRows == (tensor == "q" ? 1 : 8 + 4))
    }

    @Test(arguments: ["q", "k", "v"])
    func nanReachesExactlyTheRowsThatUseIt(tensor: String) throws {
        try checkPoison(tensor, row: 9, value: .nan, as: Float.self)
        try checkPoison(tensor, row: 9, value: .nan, as: BFloat16.self)
        try checkPoison(tensor, row: 9, value: .nan, as: Float16.self)
    }

    @Test func infinitiesInQOrVMakeNaNRows() throws {
        try checkPoison("q", row: 20, value: .infinity, as: Float.self)
        try checkPoison("q", row: 20, value: -.infinity, as: BFloat16.self)
        try checkPoison("v", row: 20, value: .infinity, as: Float.self)
        try checkPoison("v", row: 20, value: -.infinity, as: Float16.self)
    }

    /// Scores of about 1e40 (past fp32, within Double): the reference's softmax picks the largest score;
    /// the fp32 pass overflows, and the rows are recomputed in Double rather than written as zeros.
    @Test(arguments: [Float(1e20), Float(3e19)])
    func largeFiniteInputsMatchTheReference(magnitude: Float) throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        let q = randomValues(s * d, as: Float.self, seed: 101).map { $0 * magnitude }
        let k = randomValues(s * d, as: Float.self, seed: 102).map { $0 * magnitude }
        let v = randomValues(s * d, as: Float.self, seed: 103)
        try checkAgainstReference(plan: plan, q: q, k: k, v: v, as: Float.self)
        try checkAgainstReference(
            plan: plan, q: q.map(BFloat16.init), k: k.map(BFloat16.init), v: v.map(BFloat16.init), as: BFloat16.self)
    }

    /// Values near the fp32 maximum: the unnormalised P·V sum passes fp32 though every output is finite.
    @Test func valuesNearTheFloatMaximumMatchTheReference() throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        let q = [Float](repeating: 0, count: s * d)  // Uniform weights: the output is the mean of the values.
        let k = randomValues(s * d, as: Float.self, seed: 111)
        let v = randomValues(s * d, as: Float.self, seed: 112).map { $0 > 0 ? Float(3e38) : Float(2e38) }
        try checkAgainstReference(plan: plan, q: q, k: k, v: v, as: Float.self)
    }

    func checkAgainstReference<T: StorageScalar>(
        plan: AttentionPlan, q: [T], k: [T], v: [T], as _: T.Type
    ) throws {
        let d = Self.d
        let cpu = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, threads: 2)
        let reference = try ReferenceAttention.forward(q: q, k: k, v: v, batch: 1, headDim: d, plan: plan)
        #expect(reference.output.allSatisfy { $0.isFinite })
        #expect(cpu.output.contains { $0.floatValue != 0 }, "all-zero output")
        var difference = 0.0, norm = 0.0
        for i in 0..<cpu.output.count {
            let expected = reference.output[i]
            let e = Double(cpu.output[i].floatValue) - expected
            difference += e * e
            norm += expected * expected
        }
        let error = (difference / norm).squareRoot()
        #expect(error < (T.self == Float.self ? 1e-5 : 1e-2), "relative error \(error)")
        for row in 0..<cpu.lse.count {
            let expected = Float(reference.lse[row])  // Rounded to Float: ±∞ where beyond the fp32 range.
            if expected.isInfinite {
                #expect(cpu.lse[row] == expected)
            } else {
                #expect(abs(cpu.lse[row] - expected) <= 1e-5 * max(1, abs(expected)), "lse of row \(row)")
            }
        }
    }

    @Test func theReferenceFollowsTheSameContract() throws {
        let plan = try Self.plan()
        let (s, d) = (plan.layout.sequenceLength, Self.d)
        let q = randomValues(s * d, as: Float.self, seed: 121).map(Double.init)
        let k = randomValues(s * d, as: Float.self, seed: 122).map(Double.init)
        var v = randomValues(s * d, as: Float.self, seed: 123).map(Double.init)
        v[5 * d] = .infinity  // Key 5: tile 0 and the text rows attend it.
        let result = try ReferenceAttention.forward(q: q, k: k, v: v, batch: 1, headDim: d, plan: plan)
        for row in 0..<s where plan.allows(head: 0, query: row, key: 5) {
            #expect(result.output[(row * d)..<((row + 1) * d)].allSatisfy { $0.isNaN }, "row \(row)")
            #expect(result.lse[row].isNaN)
        }
        #expect(result.output[(8 * d)..<(9 * d)].allSatisfy { $0.isFinite })
    }
}

/// The portable implementation of the C micro-kernels (what CPUs without AVX2/FMA/F16C run) against the
/// float64 reference, and against the vector implementation.
@Suite struct CPUPortableKernelTests {
    func run<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim d: Int, q: [T], k: [T], v: [T], level: Int32
    ) -> (output: [T], lse: [Float]) {
        let rows = batch * plan.heads * plan.layout.sequenceLength
        var output = [T](repeating: T(.nan), count: rows * d)
        var lse = [Float](repeating: .nan, count: rows)
        q.withUnsafeBytes { qp in
            k.withUnsafeBytes { kp in
                v.withUnsafeBytes { vp in
                    output.withUnsafeMutableBytes { op in
                        lse.withUnsafeMutableBufferPointer { lp in
                            CPUAttention.run(
                                plan: plan, batch: batch, headDim: d, kind: StorageKind(T.self)!, q: qp.baseAddress!,
                                k: kp.baseAddress!, v: vp.baseAddress!, output: op.baseAddress!, lse: lp.baseAddress!,
                                scale: nil, threads: 2, keyChunk: 48, level: level)
                        }
                    }
                }
            }
        }
        return (output, lse)
    }

    func check<T: StorageScalar>(_: T.Type, tolerance: Double) throws {
        let layout = try STALayout(canvas: [5, 7, 9], tile: [2, 4, 4], textCount: 6, textValid: 4)
        let plan = try AttentionPlan(layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [3, 1, 3])])
        let (batch, d) = (1, 21)
        let count = batch * plan.heads * layout.sequenceLength * d
        let q = randomValues(count, as: T.self, seed: 131)
        let k = randomValues(count, as: T.self, seed: 132)
        let v = randomValues(count, as: T.self, seed: 133)
        let portable = run(plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, level: Int32(STA_CPU_LEVEL_PORTABLE))
        let best = run(plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, level: sta_cpu_best_level())
        let reference = try ReferenceAttention.forward(q: q, k: k, v: v, batch: batch, headDim: d, plan: plan)
        for (name, result) in [("portable", portable), ("best", best)] {
            var difference = 0.0, norm = 0.0
            for i in 0..<count {
                let e = Double(result.output[i].floatValue) - reference.output[i]
                difference += e * e
                norm += reference.output[i] * reference.output[i]
            }
            #expect((difference / norm).squareRoot() < tolerance, "\(name) \(T.self)")
            for row in 0..<result.lse.count {
                if reference.lse[row] == -.infinity {
                    #expect(result.lse[row] == -.infinity)
                } else {
                    #expect(abs(Double(result.lse[row]) - reference.lse[row]) < 1e-4, "\(name) lse \(row)")
                }
            }
        }
    }

    @Test func portableKernelsMatchTheReference() throws {
        try check(Float.self, tolerance: 1e-5)
        try check(Float16.self, tolerance: 2e-3)
        try check(BFloat16.self, tolerance: 1e-2)
    }

    @Test func portableRowConversionsAreExact() throws {
        // Every fp16 and bf16 bit pattern converts to the same Float on both levels, and back.
        let halves = (0...UInt16.max).map { $0 }
        var wide = [[Float]](repeating: [Float](repeating: 0, count: halves.count), count: 2)
        for kind in [StorageKind.float16, .bfloat16] {
            for (slot, level) in [Int32(STA_CPU_LEVEL_PORTABLE), sta_cpu_best_level()].enumerated() {
                halves.withUnsafeBytes { source in
                    wide[slot].withUnsafeMutableBufferPointer { destination in
                        kind.loadRow(
                            from: source.baseAddress!, offset: 0, count: halves.count, into: destination.baseAddress!,
                            level: level)
                    }
                }
            }
            #expect(wide[0].elementsEqual(wide[1]) { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
            for (index, value) in wide[0].enumerated() where !value.isNaN {
                let expected = kind == .float16 ? Float(Float16(bitPattern: UInt16(index))) : BFloat16(bitPattern: UInt16(index)).floatValue
                #expect(value == expected, "\(kind) pattern \(index)")
            }
        }
        // Rounding Float to 16 bits: both levels agree with Swift's conversions (ties to even), NaN stays NaN.
        var generator = SplitMix64(state: 141)
        var floats = (0..<4096).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator)) }
        floats += [0.5, 65504, 65519.99, 65520, 1e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, -0.0, .infinity, .nan, 3.4e38]
        for kind in [StorageKind.float16, .bfloat16] {
            for level in [Int32(STA_CPU_LEVEL_PORTABLE), sta_cpu_best_level()] {
                var bits = [UInt16](repeating: 0, count: floats.count)
                floats.withUnsafeBufferPointer { source in
                    bits.withUnsafeMutableBytes { destination in
                        kind.storeRow(source.baseAddress!, count: floats.count, to: destination.baseAddress!, offset: 0, level: level)
                    }
                }
                for (value, pattern) in zip(floats, bits) {
                    if value.isNaN {
                        let back = kind == .float16 ? Float(Float16(bitPattern: pattern)) : BFloat16(bitPattern: pattern).floatValue
                        #expect(back.isNaN)
                    } else {
                        let expected = kind == .float16 ? Float16(value).bitPattern : BFloat16(value).bitPattern
                        #expect(pattern == expected, "\(kind) level \(level): \(value)")
                    }
                }
            }
        }
    }

    @Test func portableBackwardMatchesTheBestLevel() throws {
        let layout = try STALayout(canvas: [6, 8], tile: [2, 4], textCount: 3, textValid: 2)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 2)
        let d = 12
        let count = plan.heads * layout.sequenceLength * d
        let q = randomValues(count, as: Float.self, seed: 151)
        let k = randomValues(count, as: Float.self, seed: 152)
        let v = randomValues(count, as: Float.self, seed: 153)
        let dO = randomValues(count, as: Float.self, seed: 154)
        let forward = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v)
        func gradients(level: Int32) -> [[Float]] {
            var dq = [Float](repeating: .nan, count: count)
            var dk = dq, dv = dq
            q.withUnsafeBytes { qp in
                k.withUnsafeBytes { kp in
                    v.withUnsafeBytes { vp in
                        forward.output.withUnsafeBytes { op in
                            dO.withUnsafeBytes { gp in
                                dq.withUnsafeMutableBufferPointer { dqp in
                                    dk.withUnsafeMutableBufferPointer { dkp in
                                        dv.withUnsafeMutableBufferPointer { dvp in
                                            CPUAttention.runBackward(
                                                plan: plan, batch: 1, headDim: d, kind: .float32, q: qp.baseAddress!,
                                                k: kp.baseAddress!, v: vp.baseAddress!, output: op.baseAddress!,
                                                lse: forward.lse, outputGradient: gp.baseAddress!,
                                                dq: dqp.baseAddress!, dk: dkp.baseAddress!, dv: dvp.baseAddress!,
                                                scale: nil, threads: 2, level: level)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return [dq, dk, dv]
        }
        let portable = gradients(level: Int32(STA_CPU_LEVEL_PORTABLE))
        let best = gradients(level: sta_cpu_best_level())
        for (a, b) in zip(portable, best) {
            var difference = 0.0, norm = 0.0
            for i in 0..<count {
                difference += Double(a[i] - b[i]) * Double(a[i] - b[i])
                norm += Double(b[i]) * Double(b[i])
            }
            #expect(!a.contains { $0.isNaN })
            #expect((difference / norm).squareRoot() < 1e-5)
        }
    }
}
