import STAGeometry
import STAReference
import STATensors
import Testing

import SlidingTileAttention
@testable import STATooling

@Suite struct ShapeSyntaxTests {
    @Test func parsesWindowsInTilesTokensAndFull() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8])
        #expect(try ShapeSyntax.window("3x3x3", layout: layout).tiles == [3, 3, 3])
        #expect(try ShapeSyntax.window("18x24x24t", layout: layout).tiles == [3, 3, 3])
        #expect(try ShapeSyntax.window("full", layout: layout).tiles == [5, 6, 10])
        let heads = try ShapeSyntax.headWindows("5x3x3*2,1x6x10", layout: layout, heads: 3)
        #expect(heads.map(\.tiles) == [[5, 3, 3], [5, 3, 3], [1, 6, 10]])
        #expect(try ShapeSyntax.headWindows("3x3x3", layout: layout, heads: 4).count == 4)
    }

    @Test func suitesMatchTheSpecification() throws {
        let hunyuan = try BenchmarkSuite.hunyuan.problems()
        #expect(hunyuan.map(\.layout.sequenceLength) == [115_456, 115_456, 115_456, 115_456])
        #expect(abs(try hunyuan[0].plan().videoSparsity - 0.91) < 1e-12)
        let mixed = try hunyuan[2].plan()
        #expect(mixed.heads == 24 && mixed.windows.count == 5)
        let wan = try BenchmarkSuite.wan.problems()
        #expect(wan[0].layout.tileGrid == [4, 6, 10] && wan[0].layout.hasHoles && wan[0].heads == 40)
        let image = try BenchmarkSuite.image.problems()
        #expect(image.map(\.layout.sequenceLength) == [16_384, 65_536])
    }
}

@Suite struct CPUBackendThroughTheFacadeTests {
    /// The façade's CPU path against the float64 reference, with the verification harness (poisoned output).
    @Test(arguments: [DType.float32, .float16, .bfloat16])
    func verificationPassesOnTheCPU(_ dtype: DType) throws {
        let layout = try STALayout(canvas: [6, 10, 12], tile: [3, 4, 4], textCount: 8, textValid: 5)
        let windows = try ShapeSyntax.headWindows("1x3x1,full", layout: layout, heads: 2)
        let testCase = AttentionProblem(
            name: "small 3D", layout: layout, headWindows: windows, batch: 2, headDim: 40, dtype: dtype)
        let outcome = try Verification.run(testCase, on: .cpu(threads: 2), seed: 7)
        #expect(outcome.passed, "rel err \(outcome.outputError), lse err \(outcome.lseError), bad rows \(outcome.badEmptyRows)")
    }

    /// The backward check measures the rows that attend nothing (holes and padding text here): their dq,
    /// dk and dv must be exactly 0, and the CPU backward writes them so.
    @Test func backwardVerificationMeasuresEmptyRowsOnTheCPU() throws {
        let layout = try STALayout(canvas: [5, 10, 12], tile: [3, 4, 4], textCount: 8, textValid: 5)
        let windows = try ShapeSyntax.headWindows("1x3x1,full", layout: layout, heads: 2)
        let testCase = AttentionProblem(
            name: "small 3D holes", layout: layout, headWindows: windows, batch: 1, headDim: 16, dtype: .float32)
        let outcome = try Verification.run(testCase, .backward, on: .cpu(threads: 2), seed: 11)
        #expect(outcome.passed, "rel err \(outcome.outputError), bad rows \(outcome.badEmptyRows)")
        #expect(outcome.badEmptyRows == 0)
    }

    @Test func rejectsWrongTensorSizes() throws {
        let plan = try AttentionPlan(layout: STALayout(canvas: [64], tile: [16]), window: Window(tiles: [1]), heads: 1)
        let attention = try SlidingTileAttention(plan: plan, batch: 1, headDim: 8)
        let short = [Float](repeating: 1, count: 10)
        #expect(throws: AttentionError.self) {
            try attention.forward(q: short, k: short, v: short, on: .cpu(threads: 1))
        }
    }

    @Test func cudaBackendOnAMachineWithoutAGPUIsAClearError() throws {
        // This machine class has no GPU: `best()` must fall back to the CPU with a reason, never crash.
        let (backend, reason) = AttentionBackend.best()
        if case .cpu = backend {
            #expect(reason?.isEmpty == false)
        }
    }
}

@Suite struct BackwardThroughTheFacadeTests {
    @Test func cpuGradientsMatchTheFloat64Reference() throws {
        let layout = try STALayout(canvas: [4, 8, 12], tile: [2, 4, 4], textCount: 6, textValid: 4)
        let plan = try AttentionPlan(layout: layout, headWindows: ShapeSyntax.headWindows("1x1x3,full", layout: layout, heads: 2))
        let attention = try SlidingTileAttention(plan: plan, batch: 1, headDim: 16)
        var random = RandomInputs(seed: 11)
        let (q, k, v, dO): ([Float], [Float], [Float], [Float]) = (
            random.values(attention.elementCount), random.values(attention.elementCount),
            random.values(attention.elementCount), random.values(attention.elementCount))
        let forward = try attention.forward(q: q, k: k, v: v, on: .cpu(threads: 2))
        let gradients = try attention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, on: .cpu(threads: 2))
        let reference = try ReferenceAttention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: dO, batch: 1, headDim: 16,
            plan: plan)
        for (name, got, want) in [("dq", gradients.dq, reference.dq), ("dk", gradients.dk, reference.dk), ("dv", gradients.dv, reference.dv)] {
            let error = AttentionAccuracy.relativeError(got.map(Double.init), reference: want)
            #expect(error < 1e-5, "\(name): \(error)")
        }
    }
}

@Suite struct RandomVerificationCaseTests {
    /// The same seed draws the same problems; each is within the bounds the reference cost relies on, its
    /// windows are valid for its layout, and its storage type and head dimension come from the sets given.
    @Test func randomCasesAreReproducibleAndBounded() throws {
        let first = try Verification.randomCases(count: 200, seed: 42)
        let again = try Verification.randomCases(count: 200, seed: 42)
        #expect(first.map(\.name) == again.map(\.name))
        #expect(first.map(\.headDim) == again.map(\.headDim) && first.map(\.dtype) == again.map(\.dtype))
        #expect(try Verification.randomCases(count: 200, seed: 43).map(\.name) != first.map(\.name))
        for c in first {
            #expect(c.layout.sequenceLength <= 2304 && c.batch * c.heads <= 4, "\(c.name)")
            #expect([DType.bfloat16, .float16].contains(c.dtype) && [64, 128].contains(c.headDim))
            for window in c.headWindows { #expect(try c.layout.resolve(window) == window, "\(c.name)") }
            _ = try c.plan()
        }
        // What the draws are for: every rank, holes, text with and without padding, per-head windows.
        #expect(Set(first.map(\.layout.rank)) == [1, 2, 3])
        #expect(first.contains { $0.layout.hasHoles } && first.contains { !$0.layout.hasHoles })
        #expect(first.contains { $0.layout.text.count > 128 && $0.layout.text.valid < $0.layout.text.count })
        #expect(first.contains { $0.layout.text.count > 0 && $0.layout.text.valid == 0 })
        #expect(first.contains { Set($0.headWindows).count > 1 } && first.contains { $0.scale != nil })
        #expect(first.contains { $0.batch == 2 })
        // On a GPU the problems with text run again as two rows with drawn valid lengths.
        let rows = Verification.randomTextRowsCases(first, seed: 42)
        #expect(rows.count == first.filter { $0.layout.text.count > 0 }.count && !rows.isEmpty)
        #expect(rows.map(\.textValid) == Verification.randomTextRowsCases(first, seed: 42).map(\.textValid))
        for c in rows {
            #expect(c.problem.batch == 2 && c.textValid.count == 2)
            #expect(c.textValid.allSatisfy { (0...c.problem.layout.text.count).contains($0) })
        }
        #expect(rows.contains { $0.textValid[0] != $0.textValid[1] })
        let cpu = try Verification.randomCases(count: 50, seed: 1, dtypes: [.float32], headDims: [40])
        #expect(cpu.allSatisfy { $0.dtype == .float32 && $0.headDim == 40 })
    }

    /// The drawn problems pass on the CPU backend, forward and backward, every row referenced.
    @Test func randomCasesPassOnTheCPU() throws {
        for (index, c) in try Verification.randomCases(count: 6, seed: 9, dtypes: [.float32, .bfloat16], headDims: [16, 64]).enumerated() {
            let forward = try Verification.run(c, on: .cpu(threads: 2), seed: UInt64(index))
            #expect(forward.passed, "\(c.name): rel err \(forward.outputError), bad rows \(forward.badEmptyRows)")
            let backward = try Verification.run(c, .backward, on: .cpu(threads: 2), seed: UInt64(index))
            #expect(backward.passed, "\(c.name): rel err \(backward.outputError), bad rows \(backward.badEmptyRows)")
        }
    }
}

@Suite struct CancellationFloorTests {
    /// Queries that attend one key each have dq = dk = 0 exactly (dS = P ∘ (dP − Δ) = 0): the backward
    /// checks pass on the CPU's rounding there, whole and sampled, instead of reporting an infinite error.
    @Test(arguments: [DType.float32, .bfloat16])
    func singleKeyQueriesPass(_ dtype: DType) throws {
        let layout = try STALayout(canvas: [4], tile: [1])
        let testCase = AttentionProblem(
            name: "one key per query", layout: layout, headWindows: [Window(tiles: [1])], batch: 2, headDim: 64, dtype: dtype)
        for check in [Verification.Check.backward, .sampledBackward] {
            let outcome = try Verification.run(testCase, check, on: .cpu(threads: 2), seed: 3)
            #expect(outcome.passed, "\(check): rel err \(outcome.outputError)")
        }
    }

    /// The floor keeps a wrong gradient far outside any tolerance: a unit error against a zero reference
    /// whose gradient without Δ has unit entries measures 10; rounding-sized errors measure as such.
    @Test func wrongGradientsStillFail() {
        #expect(Verification.gradientError([Float(1), 1], [0, 0], floor: [1, 1]) == 10)
        #expect(Verification.gradientError([Float(1e-7), 0], [0, 0], floor: [1, 1]) < 1e-6)
        #expect(Verification.gradientError([Float(1e-7), 0], [0, 0], floor: nil) == .infinity)
        #expect(Verification.gradientError([Float.nan, 0], [0, 0], floor: [1, 1]).isNaN)
        #expect(Verification.gradientError([Float(2), 0], [1, 0], floor: [0.1, 0]) == 1)
    }
}
