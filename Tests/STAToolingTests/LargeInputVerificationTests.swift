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

    /// The inputs do reach past fp32 in bf16: the text row's lse saturates to +∞, a q row meets 1e40
    /// scores, and the rows the GPU backward marks include text, video rows and the keys they attend.
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
        let marked = Verification.markedGradientRows(plan: plan, batch: c.batch, lse: forward.lse)
        #expect(marked.query.contains(textRow) && marked.query.contains(plan.layout.tileVolume))
        // Every real key of (batch 1, head 0) is attended by the text row; no key of head 1 is marked.
        let real = ReferenceAttention.realQueryMask(layout: plan.layout)
        for key in 0..<s where real[key] { #expect(marked.key.contains((1 * plan.heads + 0) * s + key)) }
        #expect(!marked.key.contains { ($0 / s) % plan.heads == 1 })
    }
}
