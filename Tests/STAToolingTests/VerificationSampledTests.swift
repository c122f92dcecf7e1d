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
        // The raw rates: the same share of a slower matrix product is a lower rate (700 / 800).
        #expect(comparison.baselineMatrixRate == 800)
        #expect(abs(comparison.rows[0].rateRatio - 0.875) < 1e-12)
        #expect(abs(comparison.rows[1].rateRatio - 0.95 * 0.875) < 1e-12)
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

@Suite struct SampledBackwardVerificationTests {
    /// A padded 3D canvas (holes on T and W, so border and hole tiles), 20 text tokens of which 13 valid,
    /// two heads with different windows, batch 2, a scale other than 1/√D.
    func problem(_ dtype: DType = .float32) throws -> AttentionProblem {
        let layout = try STALayout(canvas: [9, 12, 14], tile: [2, 4, 4], textCount: 20, textValid: 13)
        return AttentionProblem(
            name: "sampled backward", layout: layout,
            headWindows: try ShapeSyntax.headWindows("3x1x3,1x3x1", layout: layout, heads: 2),
            batch: 2, headDim: 16, dtype: dtype, scale: 0.3)
    }

    @Test func sampledReferenceEqualsTheWholeReferenceOnItsRows() throws {
        let c = try problem()
        let plan = try c.plan()
        let attention = try SlidingTileAttention(plan: plan, batch: c.batch, headDim: c.headDim)
        var random = RandomInputs(seed: 11)
        let (q, k, v, dO): ([Float], [Float], [Float], [Float]) = (
            random.values(attention.elementCount), random.values(attention.elementCount),
            random.values(attention.elementCount), random.values(attention.elementCount))
        let forward = try attention.forward(q: q, k: k, v: v, scale: 0.3, on: .cpu(threads: 2))
        let whole = try ReferenceAttention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, batch: c.batch,
            headDim: c.headDim, plan: plan, scale: 0.3)
        // Every row as a query row, a few (a hole, a text key, a padding text key) as key rows.
        let length = c.layout.sequenceLength
        let video = c.layout.paddedVideoTokenCount
        let hole = try #require((0..<video).first { c.layout.canvasPosition(ofSequenceIndex: $0) == nil })
        let keyRows = [0, 37, hole, video - 1, video, video + 12, video + 13, length - 1]
        let sampled = try ReferenceAttention.sampledBackward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, batch: c.batch,
            headDim: c.headDim, plan: plan, scale: 0.3, queryRows: Array(0..<length), keyRows: keyRows)
        #expect(sampled.dq.count == whole.dq.count)
        #expect(zip(sampled.dq, whole.dq).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) })
        var nonZeroKeyRows = 0
        for slice in 0..<(c.batch * c.heads) {
            for (index, row) in keyRows.enumerated() {
                let got = (slice * keyRows.count + index) * c.headDim, want = (slice * length + row) * c.headDim
                for i in 0..<c.headDim {
                    #expect(abs(sampled.dk[got + i] - whole.dk[want + i]) <= 1e-12 * max(1, abs(whole.dk[want + i])))
                    #expect(abs(sampled.dv[got + i] - whole.dv[want + i]) <= 1e-12 * max(1, abs(whole.dv[want + i])))
                }
                if sampled.dk[got..<(got + c.headDim)].contains(where: { $0 != 0 }) { nonZeroKeyRows += 1 }
            }
        }
        // Real key rows have gradients; the two holes and the two padding text keys have none.
        #expect(nonZeroKeyRows == 4 * 4)
        #expect(throws: ReferenceError.rowOutOfRange(row: length, sequenceLength: length)) {
            try ReferenceAttention.sampledBackward(
                q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, batch: c.batch,
                headDim: c.headDim, plan: plan, queryRows: [0], keyRows: [length])
        }
    }

    @Test(arguments: [DType.float32, .bfloat16])
    func sampledBackwardPassesOnTheCPU(dtype: DType) throws {
        let outcome = try Verification.run(problem(dtype), .sampledBackward, on: .cpu(threads: 2), seed: 5)
        #expect(outcome.passed, "rel err \(outcome.outputError), bad rows \(outcome.badEmptyRows)")
        #expect(outcome.outputError > 0 && outcome.badEmptyRows == 0)
    }

    @Test func catchesAWrongKeyRowAnUnwrittenRowAndANonZeroEmptyRow() throws {
        let c = try problem()
        let plan = try c.plan()
        let attention = try SlidingTileAttention(plan: plan, batch: c.batch, headDim: c.headDim)
        var random = RandomInputs(seed: 9)
        let (q, k, v, dO): ([Float], [Float], [Float], [Float]) = (
            random.values(attention.elementCount), random.values(attention.elementCount),
            random.values(attention.elementCount), random.values(attention.elementCount))
        let rows = Verification.sampledRows(of: c.layout, randomCount: 4, random: &random)
        let forward = try attention.forward(q: q, k: k, v: v, scale: 0.3, on: .cpu(threads: 2))
        let gradients = try attention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, scale: 0.3,
            on: .cpu(threads: 2))
        func check(_ g: (dq: [Float], dk: [Float], dv: [Float])) throws -> Verification.SampledGradientErrors {
            try Verification.compareSampledBackward(
                c, plan: plan, q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO,
                gradients: g, rows: rows)
        }
        let clean = try check(gradients)
        #expect(clean.worst < 1e-5 && clean.badEmptyRows == 0)

        let length = c.layout.sequenceLength, d = c.headDim
        // One sampled key row of dk (batch 1, head 1, the first sampled row, a corner tile) swapped with its
        // neighbour's: only dk's error grows, past the fp32 bound.
        var wrongKey = gradients
        let keyRow = ((1 * c.heads + 1) * length + rows[0]) * d
        for i in 0..<d { wrongKey.dk.swapAt(keyRow + i, keyRow + d + i) }
        let wrong = try check(wrongKey)
        #expect(wrong.dk > Verification.tolerance(.float32) && wrong.dq == clean.dq && wrong.dv == clean.dv)

        // A real row that is not sampled, left as the poison: the gradient's error is infinite.
        let real = ReferenceAttention.realQueryMask(layout: c.layout)
        let unsampled = try #require((0..<length).first { real[$0] && !rows.contains($0) })
        var unwritten = gradients
        unwritten.dv[unsampled * d + 3] = .nan
        #expect(try check(unwritten).dv == .infinity)

        // A padding text row of dq and a hole row of dk not zero: two bad rows.
        let hole = try #require((0..<c.layout.paddedVideoTokenCount).first { !real[$0] })
        var leaked = gradients
        leaked.dq[(length - 1) * d] = 1e-3
        leaked.dk[(length + hole) * d + 1] = .nan
        let bad = try check(leaked)
        #expect(bad.badEmptyRows == 2 && bad.worst == clean.worst)
    }
}

@Suite struct BackwardEmptyRowTests {
    @Test func matrixBackwardMeasuresEmptyRows() throws {
        let layout = try STALayout(canvas: [9, 12, 14], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let c = AttentionProblem(
            name: "backward empty rows", layout: layout,
            headWindows: try ShapeSyntax.headWindows("3x1x3,1x3x1", layout: layout, heads: 2),
            batch: 2, headDim: 16, dtype: .float32)
        let outcome = try Verification.run(c, .backward, on: .cpu(threads: 2), seed: 4)
        #expect(outcome.passed && outcome.badEmptyRows == 0, "rel err \(outcome.outputError)")

        // A hole row of batch 1 head 0 and a padding text row of batch 0 head 0, one NaN, one non-zero.
        let length = layout.sequenceLength
        var gradient = [Float](repeating: 0, count: c.batch * c.heads * length * c.headDim)
        #expect(Verification.nonZeroEmptyRows(c, [gradient, gradient]) == 0)
        let hole = try #require((0..<layout.paddedVideoTokenCount).first { layout.canvasPosition(ofSequenceIndex: $0) == nil })
        gradient[(2 * length + hole) * c.headDim + 5] = 1
        gradient[(length - 1) * c.headDim] = .nan
        // A real row's value is not an empty row's business.
        gradient[0] = .nan
        #expect(Verification.nonZeroEmptyRows(c, [gradient, gradient]) == 4)
    }
}
