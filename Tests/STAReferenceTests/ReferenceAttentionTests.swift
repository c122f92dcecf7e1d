import Foundation
import STAGeometry
import STATensors
import Testing
@testable import STAReference

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomValues(_ count: Int, seed: UInt64) -> [Double] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Double.random(in: -2...2, using: &rng) }
}

/// Textbook attention: softmax without the max trick, written independently of the library.
func naiveAttention(
    q: [Double], k: [Double], v: [Double], batch: Int, heads: Int, keyValueHeads: Int, sequenceLength s: Int,
    headDim d: Int, scale: Double, allows: (Int, Int, Int) -> Bool
) -> (output: [Double], lse: [Double]) {
    var output = [Double](repeating: .nan, count: batch * heads * s * d)
    var lse = [Double](repeating: .nan, count: batch * heads * s)
    for b in 0..<batch {
        for h in 0..<heads {
            let kvHead = h / (heads / keyValueHeads)
            for i in 0..<s {
                let row = (b * heads + h) * s + i
                var weights = [(key: Int, weight: Double)]()
                for j in 0..<s where allows(h, i, j) {
                    var dot = 0.0
                    for x in 0..<d { dot += q[row * d + x] * k[((b * keyValueHeads + kvHead) * s + j) * d + x] }
                    weights.append((j, Foundation.exp(scale * dot)))
                }
                let total = weights.reduce(0) { $0 + $1.weight }
                lse[row] = Foundation.log(total)
                for x in 0..<d {
                    var sum = 0.0
                    for (key, weight) in weights { sum += weight / total * v[((b * keyValueHeads + kvHead) * s + key) * d + x] }
                    output[row * d + x] = weights.isEmpty ? 0 : sum
                }
            }
        }
    }
    return (output, lse)
}

@Suite struct ReferenceAttentionTests {
    @Test(arguments: [(heads: 3, keyValueHeads: 3, seed: UInt64(1)), (4, 2, 2), (2, 1, 3)])
    func agreesWithNaiveSoftmax(heads: Int, keyValueHeads: Int, seed: UInt64) throws {
        let (batch, s, d) = (2, 13, 8)
        let q = randomValues(batch * heads * s * d, seed: seed)
        let k = randomValues(batch * keyValueHeads * s * d, seed: seed + 100)
        let v = randomValues(batch * keyValueHeads * s * d, seed: seed + 200)
        var rng = SplitMix64(seed: seed + 300)
        var table = (0..<(heads * s * s)).map { _ in Bool.random(using: &rng) }
        for j in 0..<s { table[(0 * s + 5) * s + j] = false }  // head 0, query 5 attends nothing
        let allows = { (h: Int, i: Int, j: Int) in table[(h * s + i) * s + j] }
        for scale in [nil, 0.7] as [Double?] {
            let result = try ReferenceAttention.forward(
                q: q, k: k, v: v, batch: batch, heads: heads, keyValueHeads: keyValueHeads, sequenceLength: s,
                headDim: d, scale: scale, allows: allows)
            let naive = naiveAttention(
                q: q, k: k, v: v, batch: batch, heads: heads, keyValueHeads: keyValueHeads, sequenceLength: s,
                headDim: d, scale: scale ?? 1 / Double(d).squareRoot(), allows: allows)
            #expect(AttentionAccuracy.relativeError(result.output, reference: naive.output) < 1e-13)
            #expect(AttentionAccuracy.maxAbsoluteDifference(result.lse, reference: naive.lse) < 1e-12)
            #expect(result.lse.filter(\.isFinite).count == naive.lse.filter(\.isFinite).count)
            for b in 0..<batch {
                let row = (b * heads + 0) * s + 5
                #expect(result.lse[row] == -.infinity)
                #expect(result.output[(row * d)..<((row + 1) * d)].allSatisfy { $0 == 0 })
            }
        }
    }

    @Test func largeScoresDoNotOverflow() throws {
        // Scores near 1000 overflow exp() without the max trick; the result must stay finite and exact.
        let (s, d) = (4, 2)
        let q = [Double](repeating: 30, count: s * d)
        let k: [Double] = [30, 30, 29, 30, 30, 29, 0, 0]
        let v: [Double] = [1, 0, 0, 1, 1, 1, 5, 5]
        let result = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: 1, heads: 1, sequenceLength: s, headDim: d, scale: 1) { _, _, _ in true }
        #expect(result.output.allSatisfy { $0.isFinite })
        let weights = [1800.0, 1770, 1770, 0].map { Foundation.exp($0 - 1800) }
        let total = weights.reduce(0, +)
        #expect(abs(result.lse[0] - (1800 + Foundation.log(total))) < 1e-9)
        #expect(abs(result.output[0] - (weights[0] + weights[2] + 5 * weights[3]) / total) < 1e-12)
    }

    @Test func storageTypesConvertExactly() throws {
        let (s, d) = (6, 4)
        let values = randomValues(3 * s * d, seed: 9).map { Float16($0) }
        let q = Array(values[0..<(s * d)]), k = Array(values[(s * d)..<(2 * s * d)]), v = Array(values[(2 * s * d)...])
        let allows = { (_: Int, i: Int, j: Int) in j <= i }
        let typed = try ReferenceAttention.forward(q: q, k: k, v: v, batch: 1, heads: 1, sequenceLength: s, headDim: d, allows: allows)
        let widened = try ReferenceAttention.forward(
            q: q.map { Double($0) }, k: k.map { Double($0) }, v: v.map { Double($0) },
            batch: 1, heads: 1, sequenceLength: s, headDim: d, allows: allows)
        #expect(typed.output == widened.output)
        #expect(typed.lse == widened.lse)
    }

    @Test func rejectsBadSizes() {
        let x = [Double](repeating: 1, count: 24)
        #expect(throws: ReferenceError.elementCountMismatch(input: "k", expected: 24, actual: 23)) {
            try ReferenceAttention.forward(
                q: x, k: Array(x.dropLast()), v: x, batch: 1, heads: 2, sequenceLength: 3, headDim: 4) { _, _, _ in true }
        }
        #expect(throws: ReferenceError.headsNotMultipleOfKeyValueHeads(heads: 3, keyValueHeads: 2)) {
            try ReferenceAttention.forward(
                q: x, k: x, v: x, batch: 1, heads: 3, keyValueHeads: 2, sequenceLength: 2, headDim: 4) { _, _, _ in true }
        }
        #expect(throws: ReferenceError.nonPositiveSize(name: "headDim", value: 0)) {
            try ReferenceAttention.forward(
                q: [], k: [], v: [], batch: 1, heads: 1, sequenceLength: 1, headDim: 0) { _, _, _ in true }
        }
        #expect(throws: ReferenceError.nonFiniteScale(.infinity)) {
            try ReferenceAttention.forward(
                q: x, k: x, v: x, batch: 1, heads: 1, sequenceLength: 6, headDim: 4, scale: .infinity) { _, _, _ in true }
        }
    }
}
