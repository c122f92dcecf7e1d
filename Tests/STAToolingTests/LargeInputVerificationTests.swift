import STAGeometry
import STAReference
import STATensors
import Testing

import SlidingTileAttention
@testable import STATooling

/// The "large finite inputs" cases of `sta verify`, run here on the CPU backend (the GPU runs them in
/// `sta verify` and `sta verify --backward`).
@Suite struct LargeInputVerificationTests {
    /// A smaller geometry than the matrix's (the reference backward is quadratic), same construction.
    static func problem(_ dtype: DType) throws -> AttentionProblem {
        let layout = try STALayout(canvas: [6, 10, 12], tile: [2, 4, 4], textCount: 8, textValid: 6)
        return AttentionProblem(
            name: "large", layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [3, 3, 3])],
            batch: 2, headDim: 16, dtype: dtype)
    }

    @Test(arguments: [DType.bfloat16, .float16])
    func cpuForwardPasses(dtype: DType) throws {
        let outcome = try Verification.runLargeInputs(
            Self.problem(dtype), backward: false, on: .cpu(threads: 2), seed: 5)
        #expect(outcome.passed, "rel \(outcome.outputError) lse \(outcome.lseError) bad \(outcome.badEmptyRows)")
    }

    @Test(arguments: [DType.bfloat16, .float16])
    func cpuBackwardPasses(dtype: DType) throws {
        let outcome = try Verification.runLargeInputs(
            Self.problem(dtype), backward: true, on: .cpu(threads: 2), seed: 6)
        #expect(outcome.passed, "rel \(outcome.outputError) bad \(outcome.badEmptyRows)")
    }

    /// The inputs do reach past fp32 in bf16: the text row's lse saturates to +∞, a q row meets a 1e40
    /// score, every score of a row of (batch 0, head 1) is −1e40, the values of (batch 1, head 1) are near
    /// 3e38 (and its lse are ordinary).
    @Test func theInputsAreLargeWhereTheCaseSaysSo() throws {
        let c = try Self.problem(.bfloat16)
        let (plan, attention, inputs) = try Verification.draw(c, as: BFloat16.self, tensors: 3, seed: 5)
        var (q, k, v) = (inputs[0], inputs[1], inputs[2])
        Verification.scaleLargeRows(q: &q, k: &k, v: &v, plan: plan, headDim: c.headDim, values: true)
        let forward = try attention.forward(q: q, k: k, v: v, on: .cpu(threads: 2))
        let s = plan.layout.sequenceLength
        let textRow = (1 * plan.heads + 0) * s + plan.layout.paddedVideoTokenCount + 2
        #expect(forward.lse[textRow] == .infinity)
        #expect(forward.lse[plan.layout.tileVolume] == .infinity)
        #expect(abs(v[(3 * s + 5) * c.headDim].floatValue) > 1e36)
        // Every score of this row is −1e40: its lse saturates to −∞, its output is the mean of its values.
        let negative = (0 * plan.heads + 1) * s + 2 * plan.layout.tileVolume
        #expect(forward.lse[negative] == -.infinity)
        #expect(forward.output[(negative * c.headDim)..<((negative + 1) * c.headDim)].contains { $0.floatValue != 0 })
        // The rows both backwards redo in float64: the two scaled q rows and the rows that meet the large keys.
        let redone = forward.lse.indices.filter {
            forward.lse[$0] != -.infinity && !(forward.lse[$0].isFinite && abs(forward.lse[$0]) < 32768)
        }
        #expect(redone.contains(textRow) && redone.contains(plan.layout.tileVolume))
        #expect(!redone.contains { $0 / s == 1 * plan.heads + 1 }, "large values do not make large scores")
    }
}

/// The backward NaN-contract cases of `sta verify --backward`, run here on the CPU backend.
@Suite struct NaNContractBackwardVerificationTests {
    @Test(arguments: [DType.bfloat16, .float16])
    func cpuBackwardPasses(dtype: DType) throws {
        let layout = try STALayout(canvas: [6, 10, 12], tile: [2, 4, 4], textCount: 8, textValid: 6)
        let problem = AttentionProblem(
            name: "NaN contract", layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [3, 3, 3])],
            batch: 2, headDim: 16, dtype: dtype)
        let outcome = try Verification.runNaNContractBackward(problem, on: .cpu(threads: 2), seed: 9)
        #expect(outcome.passed, "\(outcome.badEmptyRows) bad rows")
    }
}
