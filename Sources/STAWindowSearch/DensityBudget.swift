/// Chooses one option per head to minimise the total error under a mean-density budget: a
/// multiple-choice knapsack, solved greedily.
///
/// Method:
/// 1. Per head, the efficient frontier of its options — the lower convex hull of (density, error),
///    from the sparsest option (ties: smallest error) towards the exact ones.
/// 2. Every head starts at its sparsest option. If that already exceeds the budget, there is no
///    solution.
/// 3. Repeatedly take the frontier step with the largest error saved per unit of density spent
///    (marginal error per FLOP: cost is proportional to density) among the steps that still fit; a head
///    whose next step does not fit is finished. This is the classic greedy for the multiple-choice
///    knapsack: it solves the continuous relaxation up to one fractional head.
/// 4. Polish: while some head can move to any option (on the frontier or not) that lowers its error and
///    fits in the remaining budget, make the single move that saves the most error. At the end no
///    single-head change within the budget lowers the total error.
///
/// Cost: O(heads · options · log options + heads² · options) per (step, layer), microseconds for 24 heads.
public enum DensityBudget {
    /// The chosen option index per head, or nil when even the sparsest options exceed the budget.
    ///
    /// - Parameters:
    ///   - errors: `[head][option]`, the error each option gives each head (any additive measure; the
    ///     search uses the mean squared error).
    ///   - densities: `[option]`, each option's key-tile density in (0, 1].
    ///   - budget: the largest allowed mean density over heads.
    public static func allocate(errors: [[Double]], densities: [Double], budget: Double) -> [Int]? {
        let heads = errors.count
        guard heads > 0 else { return [] }
        let options = densities.indices
        // Room for rounding: a budget met exactly must not fail on the last bit.
        var remaining = budget * Double(heads) * (1 + 1e-12)

        let frontiers = errors.map { frontier(errors: $0, densities: densities) }
        var position = [Int](repeating: 0, count: heads)
        var choice = frontiers.map { $0[0] }
        remaining -= choice.reduce(0) { $0 + densities[$1] }
        guard remaining >= 0 else { return nil }

        var active = Set(0..<heads)
        while true {
            var best: (head: Int, gain: Double)? = nil
            for head in active.sorted() {
                let next = position[head] + 1
                guard next < frontiers[head].count else { active.remove(head); continue }
                let from = frontiers[head][position[head]], to = frontiers[head][next]
                let spend = densities[to] - densities[from]
                guard spend <= remaining else { active.remove(head); continue }
                let gain = (errors[head][from] - errors[head][to]) / spend
                if best == nil || gain > best!.gain { best = (head, gain) }
            }
            guard let step = best else { break }
            let from = choice[step.head]
            position[step.head] += 1
            choice[step.head] = frontiers[step.head][position[step.head]]
            remaining -= densities[choice[step.head]] - densities[from]
        }

        // Polish with single-head moves (each strictly lowers the total error, so this ends).
        while true {
            var best: (head: Int, option: Int, saved: Double)? = nil
            for head in 0..<heads {
                let current = choice[head]
                for option in options where densities[option] - densities[current] <= remaining {
                    let saved = errors[head][current] - errors[head][option]
                    if saved > 0, best == nil || saved > best!.saved { best = (head, option, saved) }
                }
            }
            guard let move = best else { break }
            remaining -= densities[move.option] - densities[choice[move.head]]
            choice[move.head] = move.option
        }
        return choice
    }

    /// The option indices on the lower convex hull of (density, error), by increasing density and
    /// strictly decreasing error, starting at the sparsest option.
    static func frontier(errors: [Double], densities: [Double]) -> [Int] {
        let sorted = densities.indices.sorted { (densities[$0], errors[$0], $0) < (densities[$1], errors[$1], $1) }
        var hull = [Int]()
        for option in sorted {
            if let last = hull.last, errors[option] >= errors[last] { continue }
            // Drop points above the segment from the one before to this one.
            while hull.count >= 2 {
                let a = hull[hull.count - 2], b = hull[hull.count - 1]
                let slopeAB = (errors[b] - errors[a]) / (densities[b] - densities[a])
                let slopeAC = (errors[option] - errors[a]) / (densities[option] - densities[a])
                if slopeAC <= slopeAB { hull.removeLast() } else { break }
            }
            hull.append(option)
        }
        return hull
    }
}
