import STAGeometry
import STATensors
import Testing

@testable import STAWindowSearch

/// Canvas 2×8×16 in tiles of 1×2×4: a 2×4×4 grid of 32 tiles, 256 tokens, no holes.
func smallLayout() throws -> STALayout {
    try STALayout(canvas: [2, 8, 16], tile: [1, 2, 4])
}

/// Head 0 attends a narrow neighbourhood; head 1 attends everything (random q, k).
let localAndGlobal: [HeadKind] = [.positional([4, 4, 4]), .random]

@Suite struct WindowSearchTests {
    /// A search over two prompts of one (step, layer) of the local/global heads, measured once for
    /// every test that reads it.
    static let localGlobal = Result { () throws -> WindowSearch in
        var search = try WindowSearch(layout: smallLayout(), fullSteps: 0, threads: 2)
        for prompt in 0..<2 {
            try search.add(syntheticCapture(
                layout: smallLayout(), kinds: localAndGlobal, step: 3, layer: 1, prompt: "\(prompt)",
                seed: UInt64(prompt + 1)))
        }
        return search
    }

    func localGlobalSearch() throws -> WindowSearch { try Self.localGlobal.get() }

    @Test func defaultCandidatesAreOddOrWholeAxisAndExcludeFull() throws {
        let layout = try smallLayout()
        let candidates = WindowSearch.defaultCandidates(for: layout)
        // {1, 2} × {1, 3, 4} × {1, 3, 4} minus the full window.
        #expect(candidates.count == 2 * 3 * 3 - 1)
        #expect(!candidates.contains(Window(tiles: [2, 4, 4])))
        for window in candidates { #expect(try layout.resolve(window) == window) }
        let hunyuan = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8])
        #expect(WindowSearch.defaultCandidates(for: hunyuan).count == 3 * 4 * 6 - 1)
    }

    @Test func errorsAreZeroForTheFullWindowAndGrowAsTheWindowShrinks() throws {
        let layout = try smallLayout()
        let search = try WindowSearch(
            layout: layout, candidates: [Window(tiles: [2, 4, 4]), Window(tiles: [2, 3, 3]), Window(tiles: [1, 1, 1])],
            threads: 2)
        let (q, k, v) = syntheticActivations(layout: layout, kinds: localAndGlobal, seed: 7)
        let errors = try search.measure(q: q, k: k, v: v, batch: 1, heads: 2, headDim: 16)
        for head in 0..<2 {
            #expect(errors[0][head].squaredError == 0)
            #expect(errors[0][head].elementCount == 256 * 16)
            #expect(errors[1][head].meanSquaredError < errors[2][head].meanSquaredError)
        }
        // The global head loses much more than the local one under the same small window.
        #expect(errors[2][1].relativeError > 10 * errors[2][0].relativeError)
    }

    @Test func toleranceGivesTheLocalHeadASmallWindowAndTheGlobalHeadALargeOne() throws {
        let search = try localGlobalSearch()
        let tolerance = 0.05
        let result = try search.result(.errorTolerance(tolerance))
        let table = try #require(search.errors[StepLayer(step: 3, layer: 1)])
        let local = try #require(result.strategy[step: 3, layer: 1, head: 0])
        let global = try #require(result.strategy[step: 3, layer: 1, head: 1])
        #expect(search.density(of: local) <= 0.25, "local head got \(local)")
        #expect(search.density(of: global) >= 0.75, "global head got \(global)")
        // Every choice meets the tolerance (or is the exact full window), and no sparser candidate does.
        for choice in result.choices {
            #expect(choice.error.relativeError <= tolerance)
            for (index, candidate) in search.candidates.enumerated()
            where search.density(of: candidate) < choice.density {
                #expect(table[index][choice.head].relativeError > tolerance, "\(candidate) is sparser and within tolerance")
            }
        }
    }

    @Test func toleranceFallsBackToFullWhenNoCandidateIsCloseEnough() throws {
        let search = try localGlobalSearch()
        let result = try search.result(.errorTolerance(0))
        // The random head has non-zero error under every sparse candidate.
        #expect(result.strategy[step: 3, layer: 1, head: 1] == search.fullWindow)
    }

    @Test(arguments: [0.1, 0.35, 0.5, 0.8])
    func densityBudgetIsRespectedAndOptimal(budget: Double) throws {
        let search = try localGlobalSearch()
        let result = try search.result(.densityBudget(budget))
        let table = try #require(search.errors[StepLayer(step: 3, layer: 1)])
        let mean = result.choices.reduce(0) { $0 + $1.density } / Double(result.choices.count)
        #expect(mean <= budget + 1e-12)
        // The local head never gets a larger window than the global one.
        #expect(result.choices[0].density <= result.choices[1].density)
        // No single-head change within the budget lowers the total error (the optimum is global; this
        // checks a consequence against the measured table).
        let options = search.candidates + [search.fullWindow]
        for choice in result.choices {
            let slack = budget * 2 - result.choices.reduce(0) { $0 + $1.density }
            for (index, option) in options.enumerated() where search.density(of: option) - choice.density <= slack - 1e-12 {
                let error = index < table.count ? table[index][choice.head].meanSquaredError : 0
                #expect(error >= choice.error.meanSquaredError, "head \(choice.head): \(option) would be better")
            }
        }
    }

    @Test func aGenerousBudgetBuysTheGlobalHeadMoreThanTheLocalOne() throws {
        let search = try localGlobalSearch()
        let result = try search.result(.densityBudget(0.5))
        #expect(result.choices[0].density < 0.3)
        #expect(result.choices[1].density > 0.7)
    }

    @Test func anImpossibleBudgetIsRejected() throws {
        let search = try localGlobalSearch()
        // The sparsest candidate, 1×1×1, is 1/32 of the tiles.
        #expect(throws: WindowSearchError.densityBudgetInfeasible(step: 3, layer: 1, budget: 0.01, minimum: 1.0 / 32)) {
            try search.result(.densityBudget(0.01))
        }
        #expect(throws: WindowSearchError.densityBudgetOutOfRange(1.5)) { try search.result(.densityBudget(1.5)) }
        #expect(throws: WindowSearchError.toleranceOutOfRange(-1)) { try search.result(.errorTolerance(-1)) }
    }

    @Test func aRunnerReplacesTheCPUKernel() throws {
        let layout = try smallLayout()
        let (q, k, v) = syntheticActivations(layout: layout, kinds: localAndGlobal, seed: 7)
        let full = Window(tiles: layout.tileGrid)
        // A runner that gives the full output ones and every sparse output zeros.
        let search = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 1, 1])]) { plan, _, _, q, _, _ in
            [Float](repeating: plan.window(head: 0) == full ? 1 : 0, count: q.count)
        }
        let errors = try search.measure(q: q, k: k, v: v, batch: 1, heads: 2, headDim: 16)
        #expect(errors[0][1].meanSquaredError == 1 && errors[0][1].relativeError == 1)
        let short = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 1, 1])]) { _, _, _, _, _, _ in [] }
        #expect(throws: WindowSearchError.backend("the attention runner returned 0 elements; 8192 are needed")) {
            try short.measure(q: q, k: k, v: v, batch: 1, heads: 2, headDim: 16)
        }
    }

    @Test func smallestErrorPicksTheWindowAlongTheAxesAHeadIgnores() throws {
        // Head 0 depends only on h distance: it needs all of t and w and little of h; head 1 the reverse
        // along w. Both candidates cost 8 of 32 tiles.
        let layout = try smallLayout()
        let alongH = Window(tiles: [2, 1, 4]), alongW = Window(tiles: [2, 4, 1])
        var search = try WindowSearch(layout: layout, candidates: [alongW, alongH], fullSteps: 0, threads: 2)
        try search.add(syntheticCapture(
            layout: layout, kinds: [.positional([0, 2, 0]), .positional([0, 0, 2])], step: 0, layer: 0, prompt: "p",
            seed: 3))
        let result = try search.result(.smallestError)
        #expect(result.strategy[step: 0, layer: 0, head: 0] == alongH)
        #expect(result.strategy[step: 0, layer: 0, head: 1] == alongW)
    }

    @Test func earlyStepsKeepFullAttentionAndAreNotMeasured() throws {
        let layout = try smallLayout()
        var search = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 3, 3])], fullSteps: 2, threads: 2)
        for step in [1, 3] {
            try search.add(syntheticCapture(layout: layout, kinds: localAndGlobal, step: step, layer: 4, prompt: "0", seed: 9))
        }
        #expect(search.errors.keys.map(\.step) == [3])
        let result = try search.result(.smallestError)
        for step in 0..<2 {
            #expect(try result.strategy.windows(step: step, layer: 4) == [search.fullWindow, search.fullWindow])
        }
        #expect(try result.strategy.windows(step: 3, layer: 4) == [Window(tiles: [1, 3, 3]), Window(tiles: [1, 3, 3])])
        #expect(result.strategy.count == 6)
        #expect(result.choices.count == 2)
        let expected = (4 * 1.0 + 2 * 9.0 / 32) / 6
        #expect(abs(result.overallDensity - expected) < 1e-12)
    }

    @Test func promptsAreAveraged() throws {
        let layout = try smallLayout()
        let candidates = [Window(tiles: [1, 1, 1])]
        var both = try WindowSearch(layout: layout, candidates: candidates, fullSteps: 0, threads: 2)
        var mse = [Double]()
        for prompt in 0..<2 {
            let capture = try syntheticCapture(
                layout: layout, kinds: localAndGlobal, step: 0, layer: 0, prompt: "\(prompt)", seed: UInt64(10 + prompt))
            var alone = try WindowSearch(layout: layout, candidates: candidates, fullSteps: 0, threads: 2)
            try alone.add(capture)
            try both.add(capture)
            mse.append(alone.errors[StepLayer(step: 0, layer: 0)]![0][1].meanSquaredError)
        }
        let combined = try #require(both.errors[StepLayer(step: 0, layer: 0)])[0][1]
        #expect(combined.elementCount == 2 * 256 * 16)
        #expect(abs(combined.meanSquaredError - (mse[0] + mse[1]) / 2) <= 1e-12 * combined.meanSquaredError)
        #expect(both.prompts[StepLayer(step: 0, layer: 0)] == ["0", "1"])
    }

    @Test func holesAndTextRowsAreNotCompared() throws {
        // Canvas 3×6×6 in 2×4×4 tiles: a 2×2×2 grid with holes, plus 4 text tokens (3 valid).
        let layout = try STALayout(canvas: [3, 6, 6], tile: [2, 4, 4], textCount: 4, textValid: 3)
        var search = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 1, 1])], fullSteps: 0, threads: 1)
        try search.add(syntheticCapture(layout: layout, kinds: [.random], step: 0, layer: 0, prompt: "0", batch: 2, seed: 5))
        let error = try #require(search.errors[StepLayer(step: 0, layer: 0)])[0][0]
        #expect(error.elementCount == 2 * 3 * 6 * 6 * 16)
        #expect(error.squaredError > 0)
    }

    @Test func aLayerMustKeepItsHeadCount() throws {
        let layout = try smallLayout()
        var search = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 1, 1])], fullSteps: 5)
        try search.add(syntheticCapture(layout: layout, kinds: localAndGlobal, step: 0, layer: 0, prompt: "0", seed: 1))
        let other = try syntheticCapture(layout: layout, kinds: [.random], step: 1, layer: 0, prompt: "0", seed: 1)
        #expect(throws: WindowSearchError.headCountMismatch(layer: 0, expected: 2, actual: 1, path: other.path)) {
            try search.add(other)
        }
        #expect(throws: WindowSearchError.noCaptures) {
            try WindowSearch(layout: layout).result(.smallestError)
        }
    }

    @Test func badSetUpsAreRejected() throws {
        let layout = try smallLayout()
        #expect(throws: WindowSearchError.negativeFullSteps(-1)) { try WindowSearch(layout: layout, fullSteps: -1) }
        #expect(throws: WindowSearchError.self) { try WindowSearch(layout: layout, candidates: []) }
        do {
            _ = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 2, 1])])
            Issue.record("an even window below the axis was accepted")
        } catch {
            #expect(error.description.contains("odd"), "\(error)")
        }
        // Sizes beyond the grid resolve to the whole axis; duplicates collapse.
        let search = try WindowSearch(layout: layout, candidates: [Window(tiles: [5, 1, 1]), Window(tiles: [2, 1, 1])])
        #expect(search.candidates == [Window(tiles: [2, 1, 1])])
    }
}

@Suite struct DensityBudgetTests {
    @Test func spendsTheBudgetWhereItSavesMostError() {
        let costs = [1, 5, 10]
        let errors = [[1.0, 0.1, 0], [0.2, 0.15, 0]]
        #expect(DensityBudget.allocate(errors: errors, costs: costs, capacity: 6) == [1, 0])
        // 12: head 0 exact (error 0.2 in total) beats both at 5 (0.25).
        #expect(DensityBudget.allocate(errors: errors, costs: costs, capacity: 12) == [2, 0])
        #expect(DensityBudget.allocate(errors: errors, costs: costs, capacity: 15) == [1, 2])
        #expect(DensityBudget.allocate(errors: errors, costs: costs, capacity: 20) == [2, 2])
        #expect(DensityBudget.allocate(errors: errors, costs: costs, capacity: 1) == nil)
        // Equal errors: the cheaper option.
        #expect(DensityBudget.allocate(errors: [[0.5, 0.5, 0.5]], costs: costs, capacity: 10) == [0])
    }

    @Test func matchesExhaustiveSearchOnSmallRandomProblems() {
        var random = TestRandom(state: 42)
        for _ in 0..<200 {
            let costs = (0..<4).map { _ in 1 + Int(random.next() % 20) }
            // Error falls with cost, with noise, per head.
            let errors = (0..<3).map { _ in costs.map { Double(20 - $0) * (1 + random.uniform()) } }
            let capacity = Int(random.next() % 60)
            let choice = DensityBudget.allocate(errors: errors, costs: costs, capacity: capacity)
            var best: Double? = nil
            for a in 0..<4 {
                for b in 0..<4 {
                    for c in 0..<4 where costs[a] + costs[b] + costs[c] <= capacity {
                        let total = errors[0][a] + errors[1][b] + errors[2][c]
                        best = min(best ?? total, total)
                    }
                }
            }
            guard let best else {
                #expect(choice == nil)
                continue
            }
            guard let choice else {
                Issue.record("a feasible capacity \(capacity) was rejected")
                continue
            }
            #expect(choice.reduce(0) { $0 + costs[$1] } <= capacity)
            let total = choice.enumerated().reduce(0) { $0 + errors[$1.offset][$1.element] }
            #expect(abs(total - best) <= 1e-12 * best)
        }
    }
}
