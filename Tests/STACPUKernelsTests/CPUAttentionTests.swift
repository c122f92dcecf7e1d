import STAGeometry
import STATensors
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@testable import STACPUKernels

// MARK: Helpers

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Normal-ish values (sum of uniforms), never all zero.
func randomValues<T: StorageScalar>(_ count: Int, as _: T.Type, seed: UInt64, spread: Float = 1) -> [T] {
    var generator = SplitMix64(state: seed)
    return (0..<count).map { _ in
        var sum: Float = 0
        for _ in 0..<4 { sum += Float.random(in: -1...1, using: &generator) }
        return T(sum * spread * 0.87)
    }
}

/// Float64 attention straight from the spec: for each row, softmax over the keys `plan.allows` admits.
func referenceAttention<T: StorageScalar>(
    plan: AttentionPlan, batch: Int, headDim d: Int, q: [T], k: [T], v: [T], scale: Double? = nil
) -> (output: [Double], lse: [Double]) {
    let s = plan.layout.sequenceLength
    let scale = scale ?? 1 / Double(d).squareRoot()
    var output = [Double](repeating: 0, count: batch * plan.heads * s * d)
    var lse = [Double](repeating: -.infinity, count: batch * plan.heads * s)
    var maskByWindow = [Int32: [Bool]]()
    for head in 0..<plan.heads {
        let window = plan.windowIndexByHead[head]
        if maskByWindow[window] == nil {
            var mask = [Bool](repeating: false, count: s * s)
            for query in 0..<s {
                for key in 0..<s { mask[query * s + key] = plan.allows(head: head, query: query, key: key) }
            }
            maskByWindow[window] = mask
        }
    }
    for b in 0..<batch {
        for head in 0..<plan.heads {
            let mask = maskByWindow[plan.windowIndexByHead[head]]!
            let base = (b * plan.heads + head) * s
            for query in 0..<s {
                let keys = (0..<s).filter { mask[query * s + $0] }
                if keys.isEmpty { continue }
                var scores = [Double]()
                for key in keys {
                    var dot = 0.0
                    for c in 0..<d {
                        dot += Double(q[(base + query) * d + c].floatValue) * Double(k[(base + key) * d + c].floatValue)
                    }
                    scores.append(dot * scale)
                }
                let m = scores.max()!
                let weights = scores.map { exp($0 - m) }
                let sum = weights.reduce(0, +)
                for (weight, key) in zip(weights, keys) {
                    for c in 0..<d {
                        output[(base + query) * d + c] += weight / sum * Double(v[(base + key) * d + c].floatValue)
                    }
                }
                lse[base + query] = m + log(sum)
            }
        }
    }
    return (output, lse)
}

struct Comparison {
    var relativeError: Double
    var maxLSEError: Double
    var silentRowsExact: Bool
    var anyNaN: Bool
}

/// Runs the backend on NaN-poisoned buffers and compares with the float64 reference.
func compare<T: StorageScalar>(
    plan: AttentionPlan, batch: Int, headDim d: Int, as type: T.Type, seed: UInt64,
    threads: Int? = nil, keyChunk: Int? = nil, scale: Float? = nil
) throws -> Comparison {
    let s = plan.layout.sequenceLength
    let count = batch * plan.heads * s * d
    let q = randomValues(count, as: T.self, seed: seed)
    let k = randomValues(count, as: T.self, seed: seed &+ 1)
    let v = randomValues(count, as: T.self, seed: seed &+ 2)
    var output = [T](repeating: T(.nan), count: count)
    var lse = [Float](repeating: .nan, count: batch * plan.heads * s)
    if let keyChunk, let kind = StorageKind(T.self) {
        q.withUnsafeBytes { qp in
            k.withUnsafeBytes { kp in
                v.withUnsafeBytes { vp in
                    output.withUnsafeMutableBytes { op in
                        lse.withUnsafeMutableBufferPointer { lp in
                            CPUAttention.run(
                                plan: plan, batch: batch, headDim: d, kind: kind, q: qp.baseAddress!,
                                k: kp.baseAddress!, v: vp.baseAddress!, output: op.baseAddress!,
                                lse: lp.baseAddress!, scale: scale, threads: threads, keyChunk: keyChunk)
                        }
                    }
                }
            }
        }
    } else {
        try q.withUnsafeBufferPointer { qp in
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try output.withUnsafeMutableBufferPointer { op in
                        try lse.withUnsafeMutableBufferPointer { lp in
                            try CPUAttention.forward(
                                plan: plan, batch: batch, headDim: d, q: qp, k: kp, v: vp, output: op, lse: lp,
                                scale: scale, threads: threads)
                        }
                    }
                }
            }
        }
    }
    let reference = referenceAttention(
        plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, scale: scale.map(Double.init))
    var difference = 0.0
    var norm = 0.0
    var maxLSEError = 0.0
    var silentRowsExact = true
    var anyNaN = false
    for row in 0..<(batch * plan.heads * s) {
        if reference.lse[row] == -.infinity {
            if lse[row] != -.infinity { silentRowsExact = false }
            for c in 0..<d where output[row * d + c].floatValue != 0 { silentRowsExact = false }
            continue
        }
        if lse[row].isNaN { anyNaN = true }
        maxLSEError = max(maxLSEError, abs(Double(lse[row]) - reference.lse[row]))
        for c in 0..<d {
            let value = output[row * d + c].floatValue
            if value.isNaN { anyNaN = true }
            difference += (Double(value) - reference.output[row * d + c]) * (Double(value) - reference.output[row * d + c])
            norm += reference.output[row * d + c] * reference.output[row * d + c]
        }
    }
    let relativeError = (difference / norm).squareRoot()
    return Comparison(
        relativeError: relativeError.isNaN ? .infinity : relativeError, maxLSEError: maxLSEError.isNaN ? .infinity : maxLSEError,
        silentRowsExact: silentRowsExact, anyNaN: anyNaN)
}

func check(_ result: Comparison, tolerance: Double, lseTolerance: Double) {
    #expect(!result.anyNaN)
    #expect(result.silentRowsExact)
    #expect(result.relativeError < tolerance, "relative error \(result.relativeError)")
    #expect(result.maxLSEError < lseTolerance, "log-sum-exp error \(result.maxLSEError)")
}

// MARK: Tests

@Suite struct CPUAttentionAccuracyTests {
    @Test func oneDimensionalWithHolesFloat32() throws {
        // 200 tokens in tiles of 16: 13 tiles, the last with 8 holes.
        let layout = try STALayout(canvas: [200], tile: [16])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [5]), heads: 2)
        check(try compare(plan: plan, batch: 2, headDim: 64, as: Float.self, seed: 1), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test func twoDimensionalPerHeadWindowsFloat32() throws {
        let layout = try STALayout(canvas: [20, 24], tile: [4, 8])
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 3]), Window(tiles: [5, 1]), Window(tiles: [1, 3])])
        check(try compare(plan: plan, batch: 1, headDim: 128, as: Float.self, seed: 2), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test func threeDimensionalTextAndOddHeadDimFloat32() throws {
        // Grid 3×2×3 with holes on the last axis, 13 valid text tokens of 20.
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [1, 3, 1])])
        check(try compare(plan: plan, batch: 2, headDim: 40, as: Float.self, seed: 3), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test func tilesLargerThanOneQueryBlock() throws {
        // Tiles of 256 tokens (two query blocks each) and 150 text tokens (two text blocks).
        let layout = try STALayout(canvas: [4, 8, 24], tile: [4, 8, 8], textCount: 150, textValid: 150)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1, 1]), heads: 1)
        check(try compare(plan: plan, batch: 1, headDim: 64, as: Float.self, seed: 4), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test func borderTilesWithSharedKeysSpanSeveralBlocks() throws {
        // Window 7 of 10 tiles: tiles 0...3 (and 6...9) have the same keys, 256 rows run together.
        let layout = try STALayout(canvas: [630], tile: [64])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [7]), heads: 1)
        let schedule = AttentionSchedule(plan: plan, batch: 1)
        #expect(schedule.items.count < layout.tileCount)
        check(try compare(plan: plan, batch: 1, headDim: 32, as: Float.self, seed: 17), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test(arguments: [1, 5, 6, 7, 64, 200])
    func keyChunkSizesAgree(keyChunk: Int) throws {
        let layout = try STALayout(canvas: [3, 9, 7], tile: [2, 4, 4], textCount: 9, textValid: 5)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 1, 1]), heads: 2)
        check(
            try compare(plan: plan, batch: 1, headDim: 24, as: Float.self, seed: 5, threads: 2, keyChunk: keyChunk),
            tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test(arguments: [1, 3, 17, 128])
    func headDimensions(headDim: Int) throws {
        let layout = try STALayout(canvas: [12, 10], tile: [4, 4], textCount: 3)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 3]), heads: 1)
        check(try compare(plan: plan, batch: 1, headDim: headDim, as: Float.self, seed: 6), tolerance: 1e-5, lseTolerance: 1e-4)
    }

    @Test func float16WithTextAndHoles() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [3, 3, 3])])
        check(try compare(plan: plan, batch: 2, headDim: 64, as: Float16.self, seed: 7), tolerance: 3e-3, lseTolerance: 1e-3)
    }

    @Test func bfloat16WithTextAndHoles() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [1, 1, 1])])
        check(try compare(plan: plan, batch: 2, headDim: 128, as: BFloat16.self, seed: 8), tolerance: 1e-2, lseTolerance: 1e-3)
    }

    @Test func customScaleAndLargeScores() throws {
        // Scores of magnitude ~50 exercise the running maximum and the rescaling of earlier chunks.
        let layout = try STALayout(canvas: [300], tile: [20])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [7]), heads: 1)
        check(
            try compare(plan: plan, batch: 1, headDim: 64, as: Float.self, seed: 9, scale: 2.5),
            tolerance: 1e-5, lseTolerance: 1e-3)
    }

    @Test func otherStorageScalarsUseTheFloatPath() throws {
        let layout = try STALayout(canvas: [40], tile: [8], textCount: 4, textValid: 2)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3]), heads: 1)
        check(try compare(plan: plan, batch: 1, headDim: 16, as: Wide.self, seed: 10), tolerance: 1e-5, lseTolerance: 1e-4)
    }
}

/// A storage type the kernels have no fast path for.
struct Wide: StorageScalar {
    var value: Double
    static var dtype: DType { .float64 }
    init(_ value: Float) { self.value = Double(value) }
    var floatValue: Float { Float(value) }
}

@Suite struct CPUAttentionAPITests {
    @Test func denseEntryMatchesFullWindowPlanAndReference() throws {
        let s = 300, d = 64, heads = 2
        let q = randomValues(heads * s * d, as: Float.self, seed: 11)
        let k = randomValues(heads * s * d, as: Float.self, seed: 12)
        let v = randomValues(heads * s * d, as: Float.self, seed: 13)
        var output = [Float](repeating: .nan, count: q.count)
        var lse = [Float](repeating: .nan, count: heads * s)
        try q.withUnsafeBufferPointer { qp in
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try output.withUnsafeMutableBufferPointer { op in
                        try lse.withUnsafeMutableBufferPointer { lp in
                            try CPUAttention.dense(
                                batch: 1, heads: heads, sequenceLength: s, headDim: d, q: qp, k: kp, v: vp,
                                output: op, lse: lp)
                        }
                    }
                }
            }
        }
        // The same function through a 2D layout with a whole-grid window.
        let layout = try STALayout(canvas: [15, 20], tile: [5, 4])
        let full = try AttentionPlan(layout: layout, window: Window(tiles: [3, 5]), heads: heads)
        let viaPlan = try CPUAttention.forward(plan: full, batch: 1, headDim: d, q: q, k: k, v: v)
        let reference = referenceAttention(
            plan: try CPUAttention.densePlan(heads: heads, sequenceLength: s), batch: 1, headDim: d, q: q, k: k, v: v)
        var difference = 0.0, norm = 0.0, planDifference: Float = 0
        for i in 0..<output.count {
            difference += (Double(output[i]) - reference.output[i]) * (Double(output[i]) - reference.output[i])
            norm += reference.output[i] * reference.output[i]
            planDifference = max(planDifference, abs(output[i] - viaPlan.output[i]))
        }
        #expect((difference / norm).squareRoot() < 1e-5)
        #expect(planDifference < 1e-5)
        for row in 0..<(heads * s) { #expect(abs(Double(lse[row]) - reference.lse[row]) < 1e-4) }
    }

    @Test func threadCountDoesNotChangeTheResult() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 8, textValid: 8)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 1, 1]), heads: 3)
        let count = 2 * 3 * layout.sequenceLength * 32
        let q = randomValues(count, as: Float.self, seed: 14)
        let k = randomValues(count, as: Float.self, seed: 15)
        let v = randomValues(count, as: Float.self, seed: 16)
        let one = try CPUAttention.forward(plan: plan, batch: 2, headDim: 32, q: q, k: k, v: v, threads: 1)
        let four = try CPUAttention.forward(plan: plan, batch: 2, headDim: 32, q: q, k: k, v: v, threads: 4)
        #expect(one.output == four.output)
        #expect(one.lse.elementsEqual(four.lse) { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }

    @Test func rejectsBadArguments() throws {
        let layout = try STALayout(canvas: [16], tile: [8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: 2)
        let good = [Float](repeating: 1, count: 2 * 16 * 4)
        #expect(throws: CPUAttentionError.elementCountMismatch(what: "k", expected: 128, actual: 127)) {
            _ = try CPUAttention.forward(plan: plan, batch: 1, headDim: 4, q: good, k: Array(good.dropLast()), v: good)
        }
        #expect(throws: CPUAttentionError.invalidBatch(0)) {
            _ = try CPUAttention.forward(plan: plan, batch: 0, headDim: 4, q: good, k: good, v: good)
        }
        #expect(throws: CPUAttentionError.invalidHeadDimension(0)) {
            _ = try CPUAttention.forward(plan: plan, batch: 1, headDim: 0, q: good, k: good, v: good)
        }
        #expect(throws: CPUAttentionError.invalidThreadCount(0)) {
            _ = try CPUAttention.forward(plan: plan, batch: 1, headDim: 4, q: good, k: good, v: good, threads: 0)
        }
        #expect(throws: CPUAttentionError.nonFiniteScale(.infinity)) {
            _ = try CPUAttention.forward(plan: plan, batch: 1, headDim: 4, q: good, k: good, v: good, scale: .infinity)
        }
        var lse = [Float](repeating: 0, count: 31)
        var output = good
        #expect(throws: CPUAttentionError.elementCountMismatch(what: "lse", expected: 32, actual: 31)) {
            try good.withUnsafeBufferPointer { g in
                try output.withUnsafeMutableBufferPointer { o in
                    try lse.withUnsafeMutableBufferPointer { l in
                        try CPUAttention.forward(plan: plan, batch: 1, headDim: 4, q: g, k: g, v: g, output: o, lse: l)
                    }
                }
            }
        }
        #expect(CPUAttentionError.invalidBatch(0).description.contains("at least 1"))
    }
}
