import STACPUKernels
import STACUDAKernels
import STAGeometry
import STATensors
import Synchronization
import Testing

@testable import STAWindowSearch

/// The host half of the GPU search, checked on the CPU: which rows are read and compared, how the device's
/// partial sums are laid out and added up, the dtype attention runs in, the measurer hook of
/// `WindowSearch`, the agreement test of `--check`, and a clear error without a GPU.
@Suite struct DeviceSearchHostTests {
    /// Canvas 3×5×6 in tiles of 2×2×4 (holes on every axis), 7 text tokens of which 4 valid.
    func paddedLayout() throws -> STALayout {
        try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4], textCount: 7, textValid: 4)
    }

    @Test func rowsAreTheRealVideoTokensAndTheValidText() throws {
        let layout = try paddedLayout()
        let rows = SearchRows(layout: layout)
        #expect(rows.sequenceLength == layout.sequenceLength)
        #expect(rows.compared.count == 3 * 5 * 6)
        #expect(rows.read.count == 3 * 5 * 6 + 4)
        let kinds = rows.kinds
        for s in 0..<layout.sequenceLength {
            let video = layout.canvasPosition(ofSequenceIndex: s) != nil
            let validText = s >= layout.paddedVideoTokenCount && s < layout.paddedVideoTokenCount + 4
            let expected: WindowErrorKernels.RowKind = video ? .compared : validText ? .read : .unread
            #expect(kinds[s] == expected.rawValue, "row \(s)")
        }
        // Flat indices of [B, H, S, D] back to positions.
        let (heads, headDim) = (3, 8)
        let index = ((1 * heads + 2) * layout.sequenceLength + 17) * headDim + 5
        #expect(rows.position(ofFlatIndex: index, heads: heads, headDim: headDim) == [1, 2, 17, 5])
    }

    @Test func blocksCoverEverySequencePosition() {
        for length in [1, 63, 64, 65, 500, 4096, 4672, 115_456] {
            let rows = WindowErrorKernels.rowsPerBlock(sequenceLength: length)
            let blocks = WindowErrorKernels.blocksPerHead(sequenceLength: length)
            #expect(rows % 8 == 0 && rows >= 64)
            #expect(blocks * rows >= length && (blocks - 1) * rows < length, "S = \(length)")
        }
        #expect(WindowErrorKernels.blocksPerHead(sequenceLength: 115_456) == 64)
    }

    /// The device's partial table, built on the host with the kernels' blocking from bf16-rounded
    /// outputs, adds up to what the CPU path's comparison gives for the same outputs.
    @Test func partialSumsAddUpToTheCPUComparison() throws {
        let layout = try paddedLayout()
        let rows = SearchRows(layout: layout)
        let (batch, heads, headDim) = (2, 3, 16)
        let candidates = [Window(tiles: [1, 1, 1]), Window(tiles: [1, 3, 1])]
        let rounded: WindowSearch.AttentionRunner = { plan, batch, headDim, q, k, v in
            try CPUAttention.forward(plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, threads: 2)
                .output.map { BFloat16($0).floatValue }
        }
        let search = try WindowSearch(layout: layout, candidates: candidates, fullSteps: 0, runner: rounded)
        let (q, k, v) = syntheticActivations(
            layout: layout, kinds: [.positional([1, 1, 1]), .random, .positional([4, 0, 0])], batch: batch,
            headDim: headDim, seed: 11)
        let expected = try search.measure(q: q, k: k, v: v, batch: batch, heads: heads, headDim: headDim)

        let length = layout.sequenceLength
        let perBlock = WindowErrorKernels.rowsPerBlock(sequenceLength: length)
        let partials = ErrorPartials(
            candidates: candidates.count, batch: batch, heads: heads,
            blocksPerHead: WindowErrorKernels.blocksPerHead(sequenceLength: length),
            elementsPerHead: rows.comparedElements(headDim: headDim))
        let fullPlan = try AttentionPlan(layout: layout, window: search.fullWindow, heads: heads)
        let full = try rounded(fullPlan, batch, headDim, q, k, v)
        let kinds = rows.kinds
        var table = [Double](repeating: .nan, count: partials.valueCount)
        for (c, window) in candidates.enumerated() {
            let sparse = try rounded(AttentionPlan(layout: layout, window: window, heads: heads), batch, headDim, q, k, v)
            for batchHead in 0..<(batch * heads) {
                for block in 0..<partials.blocksPerHead {
                    var sums = (0.0, 0.0, 0.0)
                    for s in (block * perBlock)..<min(length, (block + 1) * perBlock) where kinds[s] == 2 {
                        for d in 0..<headDim {
                            let index = (batchHead * length + s) * headDim + d
                            let difference = Double(sparse[index]) - Double(full[index])
                            sums.0 += difference * difference
                            sums.1 += abs(difference)
                            sums.2 += Double(full[index]) * Double(full[index])
                        }
                    }
                    let start = c * partials.valuesPerCandidate + (batchHead * partials.blocksPerHead + block) * 3
                    table[start] = sums.0
                    table[start + 1] = sums.1
                    table[start + 2] = sums.2
                }
            }
        }
        let errors = partials.errors(table)
        for c in candidates.indices {
            for head in 0..<heads {
                let (a, b) = (errors[c][head], expected[c][head])
                #expect(a.elementCount == b.elementCount)
                #expect(abs(a.squaredError - b.squaredError) <= 1e-9 * b.squaredError)
                #expect(abs(a.absoluteError - b.absoluteError) <= 1e-9 * b.absoluteError)
                #expect(abs(a.squaredReference - b.squaredReference) <= 1e-9 * b.squaredReference)
            }
        }
    }

    @Test func partialsAreAddedPerCandidateAndHeadOverBatchAndBlocks() {
        let partials = ErrorPartials(candidates: 2, batch: 2, heads: 3, blocksPerHead: 4, elementsPerHead: 10)
        // Value at (candidate, b·h, block, triple) encodes its own position.
        var table = [Double]()
        for c in 0..<2 { for bh in 0..<6 { for block in 0..<4 { for t in 0..<3 {
            table.append(Double(c * 1000 + bh * 100 + block * 10 + t))
        } } } }
        let errors = partials.errors(table)
        for c in 0..<2 {
            for head in 0..<3 {
                let blocks = 0 + 10 + 20 + 30
                let both = Double(c * 1000 * 8 + (head * 100 + (3 + head) * 100) * 4 + 2 * blocks)
                #expect(errors[c][head].squaredError == both)
                #expect(errors[c][head].absoluteError == both + 8)
                #expect(errors[c][head].squaredReference == both + 16)
                #expect(errors[c][head].elementCount == 20)
            }
        }
    }

    @Test func attentionRunsInTheStoredHalfDTypeOrBFloat16() {
        #expect(CUDAWindowMeasurer.computeDType(stored: [.float16, .float16, .float16]) == .float16)
        #expect(CUDAWindowMeasurer.computeDType(stored: [.bfloat16, .bfloat16, .bfloat16]) == .bfloat16)
        #expect(CUDAWindowMeasurer.computeDType(stored: [.float16, .bfloat16, .float16]) == .bfloat16)
        #expect(CUDAWindowMeasurer.computeDType(stored: [.float32, .float32, .float32]) == .bfloat16)
        #expect(CUDAWindowMeasurer.computeDType(stored: [.float64, .float16, .float16]) == .bfloat16)
        #expect(WindowErrorKernels.storageKind(.int8) == nil)
        #expect(WindowErrorKernels.storageKind(.float64) == 3)
    }

    @Test func aCaptureTheGPUCannotRunNamesTheReasonAndTheCPUPath() {
        let error = WindowSearchError.deviceCannotMeasure(
            path: "c.safetensors", reason: "head dim 16 is not supported; allowed: 64, 128")
        #expect(error.description.contains("'c.safetensors' cannot be measured on the GPU"))
        #expect(error.description.contains("head dim 16 is not supported; allowed: 64, 128"))
        #expect(error.description.contains("without --gpu"))
    }

    @Test func theGPUMeasurerFailsClearlyWithoutADevice() throws {
        // Only meaningful where there is no CUDA device: with one, the measurer opens.
        guard let failure = Result(catching: { () throws(WindowSearchError) in try CUDAWindowMeasurer(device: 0) })
            .failure
        else { return }
        guard case let .unavailable(message) = failure else {
            Issue.record("expected an unavailable error, got \(failure)")
            return
        }
        #expect(message.contains("CUDA"))
        #expect(failure.description.hasPrefix("attention backend unavailable: the GPU search needs a CUDA device"))
    }
}

/// A measurer for tests: errors from the CPU path, optionally changed, with a log of its calls.
final class RecordingMeasurer: WindowErrorMeasurer {
    let change: @Sendable (_ candidate: Int, _ head: Int, _ error: OutputError) -> OutputError
    let log = Mutex<[String]>([])

    init(change: @escaping @Sendable (Int, Int, OutputError) -> OutputError = { $2 }) {
        self.change = change
    }

    func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows, next: ActivationCapture?
    ) throws(WindowSearchError) -> [[OutputError]] {
        log.withLock { $0.append("measure \(capture.path), next \(next?.path ?? "none")") }
        let cpu = try WindowSearch(layout: layout, candidates: candidates, fullSteps: 0, threads: 2)
        let (q, k, v) = try capture.tensors()
        let errors = try cpu.measure(
            q: q, k: k, v: v, batch: capture.batch, heads: capture.heads, headDim: capture.headDim, source: capture.path)
        return errors.enumerated().map { c, perHead in perHead.enumerated().map { change(c, $0, $1) } }
    }
}

@Suite struct MeasurerHookTests {
    let candidates = [Window(tiles: [1, 1, 1]), Window(tiles: [1, 3, 3]), Window(tiles: [2, 3, 3])]

    func captures() throws -> [ActivationCapture] {
        let layout = try smallLayout()
        return try [(1, 0, "a"), (3, 0, "a"), (3, 0, "b")].enumerated().map { index, entry in
            try syntheticCapture(
                layout: layout, kinds: localAndGlobal, step: entry.0, layer: entry.1, prompt: entry.2,
                seed: UInt64(index + 1))
        }
    }

    func search(_ measurer: (any WindowErrorMeasurer)?) throws -> WindowSearch {
        var search = try WindowSearch(
            layout: smallLayout(), candidates: candidates, fullSteps: 2, threads: 2, measurer: measurer)
        let all = try captures()
        for (index, capture) in all.enumerated() {
            try search.add(capture, prefetching: index + 1 < all.count ? all[index + 1] : nil)
        }
        return search
    }

    @Test func aMeasurerReplacesTheCPUPathAndIsToldWhatComesNext() throws {
        let measurer = RecordingMeasurer()
        let hooked = try search(measurer)
        let reference = try search(nil)
        #expect(hooked.errors == reference.errors)
        #expect(hooked.prompts == reference.prompts)
        // The step-1 capture is below the full steps: never measured, and not prefetched.
        #expect(measurer.log.withLock { $0 } == ["measure s3l0pa, next s3l0pb", "measure s3l0pb, next none"])
        let agreement = try SearchAgreement(reference: reference, search: hooked, rule: .smallestError)
        #expect(agreement.passed)
        #expect(agreement.worstRatio == 0)
        #expect(agreement.comparedEntries == 3 * 2)
    }

    @Test func aRunnerAndAMeasurerTogetherAreRefused() throws {
        let runner: WindowSearch.AttentionRunner = { _, _, _, q, _, _ in q }
        #expect(throws: WindowSearchError.self) {
            _ = try WindowSearch(layout: smallLayout(), runner: runner, measurer: RecordingMeasurer())
        }
    }

    @Test func aMeasurerWithTheWrongShapeIsABackendError() throws {
        final class Short: WindowErrorMeasurer {
            func measure(
                _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows,
                next: ActivationCapture?
            ) throws(WindowSearchError) -> [[OutputError]] { [[.zero]] }
        }
        var search = try WindowSearch(layout: smallLayout(), candidates: candidates, fullSteps: 0, measurer: Short())
        #expect(throws: WindowSearchError.self) { try search.add(try captures()[1]) }
    }

    /// Outputs rounded to bf16 (what the GPU writes) stay within the default agreement; the same
    /// search with errors 5 % too large, or with two candidates' errors swapped, does not.
    @Test func agreementAcceptsBF16RoundingAndCatchesRealDifferences() throws {
        let reference = try search(nil)
        let rounded: WindowSearch.AttentionRunner = { plan, batch, headDim, q, k, v in
            try CPUAttention.forward(plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, threads: 2)
                .output.map { BFloat16($0).floatValue }
        }
        var bf16 = try WindowSearch(layout: smallLayout(), candidates: candidates, fullSteps: 2, runner: rounded)
        for capture in try captures() { try bf16.add(capture) }
        let close = try SearchAgreement(reference: reference, search: bf16, rule: .smallestError)
        #expect(close.passed, "worst \(close.worstRatio) at \(close.worstEntry)")
        #expect(close.worstRatio > 0)

        let inflated = try search(RecordingMeasurer { _, _, error in
            var error = error
            error.squaredError *= 1.05 * 1.05
            return error
        })
        let far = try SearchAgreement(reference: reference, search: inflated, rule: .smallestError)
        #expect(!far.passed)
        #expect(far.worstRatio > 1)
        #expect(far.worstEntry.contains("‖sparse − full‖₂"))

        // Swapping the errors of the smallest and the largest window flips every head's choice.
        let swapped = try search(SwappingMeasurer())
        let flipped = try SearchAgreement(reference: reference, search: swapped, rule: .smallestError)
        #expect(!flipped.passed)
        #expect(!flipped.mismatches.isEmpty)
        for mismatch in flipped.mismatches {
            #expect(mismatch.reference == Window(tiles: [2, 3, 3]))
            #expect(mismatch.other == Window(tiles: [1, 1, 1]))
        }
    }
}

extension MeasurerHookTests {
    /// A window whose error sits at the tolerance can fall on either side of it by rounding alone: a
    /// different choice there is a near tie, not a mismatch.
    @Test func aChoiceAtTheToleranceEdgeIsANearTie() throws {
        let reference = try search(nil)
        let table = try #require(reference.errors[StepLayer(step: 3, layer: 0)])
        let threshold = table[0][0].relativeError * (1 + 1e-4)
        let nudged = try search(RecordingMeasurer { _, _, error in
            var error = error
            error.squaredError *= 1.002
            return error
        })
        let rule = SelectionRule.errorTolerance(threshold)
        #expect(try reference.result(rule).strategy[step: 3, layer: 0, head: 0] == Window(tiles: [1, 1, 1]))
        #expect(try nudged.result(rule).strategy[step: 3, layer: 0, head: 0] != Window(tiles: [1, 1, 1]))
        let agreement = try SearchAgreement(reference: reference, search: nudged, rule: rule)
        #expect(agreement.passed, "\(agreement.mismatches)")
        #expect(agreement.nearTies.contains { $0.head == 0 && $0.reference == Window(tiles: [1, 1, 1]) })
        // The same nudge under a much tighter agreement is a real difference.
        let strict = try SearchAgreement(reference: reference, search: nudged, rule: rule, tolerance: 1e-5, floor: 0)
        #expect(!strict.passed)
    }
}

/// Reports candidate 0's errors as candidate 2's and the other way round.
final class SwappingMeasurer: WindowErrorMeasurer {
    let inner = RecordingMeasurer()
    func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows, next: ActivationCapture?
    ) throws(WindowSearchError) -> [[OutputError]] {
        var errors = try inner.measure(capture, candidates: candidates, layout: layout, rows: rows, next: next)
        errors.swapAt(0, 2)
        return errors
    }
}

extension Result {
    var failure: Failure? {
        if case let .failure(error) = self { return error }
        return nil
    }
}
