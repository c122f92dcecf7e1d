import STAGeometry

/// How the search turns measured errors into one window per head.
public enum SelectionRule: Hashable, Sendable, CustomStringConvertible {
    /// FastVideo's rule: per head, the candidate of smallest mean squared error (ties: the sparser, then
    /// the earlier candidate). Without a budget this favours dense candidates; FastVideo gives candidates
    /// of about equal cost.
    case smallestError
    /// Per (step, layer), minimise the sum over heads of the mean squared error subject to
    /// mean over heads of key-tile density ≤ `budget`. Options: the candidates and the full window.
    /// Solved exactly by dynamic programming over key tiles; see `DensityBudget`.
    case densityBudget(Double)
    /// Per head, the sparsest option whose relative error ‖sparse − full‖/‖full‖ (over all measured
    /// prompts) is at most `tolerance` (ties: the smaller error); the full window when no candidate is.
    case errorTolerance(Double)

    public var description: String {
        switch self {
        case .smallestError: return "smallest error"
        case let .densityBudget(budget): return "density budget \(budget)"
        case let .errorTolerance(tolerance): return "error tolerance \(tolerance)"
        }
    }
}

/// The window chosen for one head of one measured (step, layer), with its measured error.
public struct HeadChoice: Hashable, Sendable {
    public let step: Int
    public let layer: Int
    public let head: Int
    /// The window, resolved (the full window for a fallback).
    public let window: Window
    /// Key-tile density of `window`.
    public let density: Double
    /// Error of `window` on this head, summed over the measured prompts.
    public let error: OutputError
}

/// What a search produced: the strategy (measured steps and full steps) and the measured choices.
public struct SearchResult: Sendable {
    public let strategy: MaskStrategy
    /// One entry per head of each measured (step, layer), sorted by step, layer, head.
    public let choices: [HeadChoice]
    /// Mean key-tile density over every entry of the strategy, full steps included: the fraction of
    /// dense attention's key tiles the model attends when it runs with this strategy.
    public let overallDensity: Double

    /// Per-layer means over the measured choices, sorted by layer.
    public var layerSummaries: [LayerSummary] {
        var byLayer = [Int: [HeadChoice]]()
        for choice in choices { byLayer[choice.layer, default: []].append(choice) }
        return byLayer.keys.sorted().map { layer in LayerSummary(layer: layer, choices: byLayer[layer]!) }
    }
}

/// Means over the measured heads and steps of one layer.
public struct LayerSummary: Hashable, Sendable {
    public let layer: Int
    /// Measured steps of this layer.
    public let stepCount: Int
    /// Choices summarised (steps × heads).
    public let choiceCount: Int
    public let meanDensity: Double
    public let meanSquaredError: Double
    public let meanAbsoluteError: Double
    public let meanRelativeError: Double
    public let maximumRelativeError: Double

    init(layer: Int, choices: [HeadChoice]) {
        let count = Double(max(1, choices.count))
        self.layer = layer
        self.stepCount = Set(choices.map(\.step)).count
        self.choiceCount = choices.count
        self.meanDensity = choices.reduce(0) { $0 + $1.density } / count
        self.meanSquaredError = choices.reduce(0) { $0 + $1.error.meanSquaredError } / count
        self.meanAbsoluteError = choices.reduce(0) { $0 + $1.error.meanAbsoluteError } / count
        self.meanRelativeError = choices.reduce(0) { $0 + $1.error.relativeError } / count
        self.maximumRelativeError = choices.map(\.error.relativeError).max() ?? 0
    }
}

extension WindowSearch {
    /// Picks one window per head of every measured (step, layer) by `rule`, and gives every head of
    /// every seen layer the full window for steps `0..<fullSteps`.
    ///
    /// Throws when nothing was added, a parameter is out of range, or a density budget cannot be met.
    /// Cost: O(measured (step, layer) · heads · candidates · log) plus the strategy's size.
    public func result(_ rule: SelectionRule) throws(WindowSearchError) -> SearchResult {
        guard !headsByLayer.isEmpty else { throw .noCaptures }
        switch rule {
        case .smallestError: break
        case let .densityBudget(budget):
            guard budget > 0, budget <= 1 else { throw .densityBudgetOutOfRange(budget) }
        case let .errorTolerance(tolerance):
            guard tolerance.isFinite, tolerance >= 0 else { throw .toleranceOutOfRange(tolerance) }
        }
        var strategy = MaskStrategy()
        var choices = [HeadChoice]()
        for key in errors.keys.sorted() {
            let table = errors[key]!
            let picks = try choose(table, rule: rule, at: key)
            for (head, pick) in picks.enumerated() {
                choices.append(HeadChoice(
                    step: key.step, layer: key.layer, head: head, window: pick.window, density: density(of: pick.window),
                    error: pick.error))
                strategy[step: key.step, layer: key.layer, head: head] = pick.window
            }
        }
        for step in 0..<fullSteps {
            for (layer, heads) in headsByLayer {
                for head in 0..<heads { strategy[step: step, layer: layer, head: head] = fullWindow }
            }
        }
        let entries = strategy.entries
        let overall = entries.isEmpty ? 1 : entries.reduce(0) { $0 + density(of: $1.window) } / Double(entries.count)
        return SearchResult(strategy: strategy, choices: choices, overallDensity: overall)
    }

    /// One (window, error) per head for a `[candidate][head]` error table.
    private func choose(
        _ table: [[OutputError]], rule: SelectionRule, at key: StepLayer
    ) throws(WindowSearchError) -> [(window: Window, error: OutputError)] {
        let heads = table.first?.count ?? 0
        // Options: the candidates, then the full window (zero error) if it is not one of them.
        var windows = candidates
        var optionErrors = table
        if !windows.contains(fullWindow) {
            windows.append(fullWindow)
            optionErrors.append((0..<heads).map { head in
                OutputError(squaredReference: table[0][head].squaredReference, elementCount: table[0][head].elementCount)
            })
        }
        let densities = windows.map { density(of: $0) }
        var picks = [Int]()
        switch rule {
        case .smallestError:
            for head in 0..<heads {
                picks.append(candidates.indices.min { a, b in
                    (table[a][head].meanSquaredError, densities[a], a) < (table[b][head].meanSquaredError, densities[b], b)
                }!)
            }
        case let .errorTolerance(tolerance):
            let fullIndex = windows.firstIndex(of: fullWindow)!
            for head in 0..<heads {
                let admissible = candidates.indices.filter { table[$0][head].relativeError <= tolerance }
                picks.append(admissible.min { a, b in
                    (densities[a], table[a][head].meanSquaredError, a) < (densities[b], table[b][head].meanSquaredError, b)
                } ?? fullIndex)
            }
        case let .densityBudget(budget):
            let errors = (0..<heads).map { head in windows.indices.map { optionErrors[$0][head].meanSquaredError } }
            // Mean density ≤ budget ⇔ Σ key tiles ≤ budget · heads · tileCount (rounded down, with room
            // for the last bit of a budget met exactly).
            let capacity = Int((budget * Double(heads * layout.tileCount) * (1 + 1e-12)).rounded(.down))
            guard let allocation = DensityBudget.allocate(
                errors: errors, costs: windows.map(\.tileCount), capacity: capacity)
            else {
                throw .densityBudgetInfeasible(
                    step: key.step, layer: key.layer, budget: budget, minimum: densities.min() ?? 1)
            }
            picks = allocation
        }
        return picks.enumerated().map { head, option in (windows[option], optionErrors[option][head]) }
    }
}
