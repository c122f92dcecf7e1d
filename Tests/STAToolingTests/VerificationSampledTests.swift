import STAGeometry
import STAReference
import STATensors
import Testing

import SlidingTileAttention
@testable import STATooling

@Suite struct SampledVerificationTests {
    @Test func sampledRowsCoverBordersHolesTextAndPadding() throws {
        // Grid 5×4×4 with holes on T and W; 300 text tokens of which 200 are valid.
        let layout = try STALayout(canvas: [18, 16, 30], tile: [4, 4, 8], textCount: 300, textValid: 200)
        var random = RandomInputs(seed: 7)
        let rows = Verification.sampledRows(of: layout, random: &random)
        #expect(rows == rows.sorted() && Set(rows).count == rows.count)
        #expect(rows.allSatisfy { (0..<layout.sequenceLength).contains($0) })
        let video = layout.paddedVideoTokenCount
        // First and last tile of the grid (two corners), and the last tile's last row, which is a hole.
        #expect(rows.contains(0) && rows.contains(video - 1))
        #expect(layout.canvasPosition(ofSequenceIndex: video - 1) == nil)
        // Text: first, last valid, first padding, last, and both sides of a 64-row boundary.
        for text in [0, 199, 200, 299, 63, 64, 255, 256] { #expect(rows.contains(video + text)) }
    }

    @Test func sampledCheckPassesOnTheCPUAndCatchesAWrongRow() throws {
        let layout = try STALayout(canvas: [9, 12, 14], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let problem = AttentionProblem(
            name: "sampled", layout: layout,
            headWindows: try ShapeSyntax.headWindows("3x1x3,full", layout: layout, heads: 2),
            batch: 2, headDim: 16, dtype: .float32, scale: 0.2)
        let outcome = try Verification.run(problem, .sampledRows, on: .cpu(threads: 2), seed: 3)
        #expect(outcome.passed, "rel err \(outcome.outputError), lse err \(outcome.lseError), bad rows \(outcome.badEmptyRows)")

        // The same comparison with a hole row written as non-zero must count it.
        let plan = try problem.plan()
        let attention = try SlidingTileAttention(plan: plan, batch: 2, headDim: 16)
        var random = RandomInputs(seed: 3)
        let q: [Float] = random.values(attention.elementCount)
        let rows = Verification.sampledRows(of: layout, random: &random)
        var result = try attention.forward(q: q, k: q, v: q, scale: 0.2, on: .cpu(threads: 2))
        let reference = try ReferenceAttention.forward(
            q: q, k: q, v: q, batch: 2, headDim: 16, plan: plan, scale: 0.2, queryRows: rows)
        let hole = try #require((0..<layout.paddedVideoTokenCount).first { layout.canvasPosition(ofSequenceIndex: $0) == nil })
        result.output[hole * 16] = 1
        let broken = Verification.compareSampled(
            problem, rows: rows, output: result.output, lse: result.lse, reference: reference.output,
            referenceLSE: reference.lse)
        #expect(broken.badEmptyRows == 1 && !broken.passed)
    }
}

@Suite struct BenchmarkComparisonTests {
    let baseline = """
        {"device":"d","matmul_bf16_tflops":800.0,"results":[\
        {"problem":"p 3x3x3","kernel":"hopper","tflops":600.0},\
        {"problem":"p 3x3x3","kernel":"portable","tflops":280.0}]}
        """

    @Test func comparesSharesOfTheMatrixRate() throws {
        // The same share of a slower matrix rate is no regression; a 5 % lower share is.
        let comparison = try BenchmarkComparison(
            measurements: [("p 3x3x3", "hopper", 525.0), ("p 3x3x3", "portable", 232.75), ("q", "hopper", 1)],
            matrixRate: 700, baseline: baseline)
        #expect(comparison.rows.count == 2 && comparison.unmatched == ["q (hopper)"])
        #expect(abs(comparison.rows[0].ratio - 1) < 1e-12)
        #expect(abs(comparison.rows[1].ratio - 0.95) < 1e-12)
        #expect(comparison.regressions(tolerance: 0.03).map(\.kernel) == ["portable"])
        #expect(comparison.regressions(tolerance: 0.06).isEmpty)
    }

    @Test func rejectsWhatIsNotABenchmarkFile() {
        #expect(throws: BenchmarkComparison.FormatError.self) {
            try BenchmarkComparison(measurements: [], matrixRate: 1, baseline: "{\"results\": []}")
        }
        #expect(throws: BenchmarkComparison.FormatError.self) {
            try BenchmarkComparison(measurements: [], matrixRate: 1, baseline: "not json")
        }
        #expect(throws: BenchmarkComparison.FormatError.self) {
            try BenchmarkComparison(
                measurements: [], matrixRate: 1, baseline: "{\"matmul_bf16_tflops\": 1, \"results\": [{\"problem\": \"p\"}]}")
        }
    }
}
