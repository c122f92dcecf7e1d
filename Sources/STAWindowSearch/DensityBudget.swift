/// Chooses one option per head to minimise the total error under a budget of key tiles: a
/// multiple-choice knapsack, solved exactly.
///
/// A window's cost is its key tiles per query tile, an integer in 1...tileCount (its density times
/// the tile count), so the budget "mean density over heads ≤ d" is the integer capacity
/// ⌊d · heads · tileCount⌋ key tiles. Dynamic programming over (heads so far, key tiles spent) then
/// finds the true optimum — no greedy or Lagrangian gap: `best[h][c]` is the least error of heads
/// 0..<h within c key tiles, and the choices are traced back from `best[heads][capacity]`. Among
/// options of equal error a head takes the cheaper one.
///
/// Cost: O(heads · options · capacity) time, O(heads · capacity) memory: about 12 million steps for
/// HunyuanVideo (24 heads, 72 options, capacity ≤ 24 · 300 key tiles).
public enum DensityBudget {
    /// The chosen option index per head, or nil when even the cheapest options exceed `capacity`.
    ///
    /// - Parameters:
    ///   - errors: `[head][option]`, the error each option gives each head (any additive measure; the
    ///     search uses the mean squared error).
    ///   - costs: `[option]`, each option's key tiles per query tile (≥ 0).
    ///   - capacity: the most key tiles all heads together may use.
    public static func allocate(errors: [[Double]], costs: [Int], capacity: Int) -> [Int]? {
        let heads = errors.count
        guard heads > 0 else { return [] }
        guard capacity >= 0, let cheapest = costs.min(), cheapest * heads <= capacity else { return nil }
        // Options by cost, so that the first option reaching the least error is the cheapest one.
        let order = costs.indices.sorted { (costs[$0], $0) < (costs[$1], $1) }
        let width = capacity + 1
        // best[c]: least error of the heads so far within c key tiles (+∞ when impossible).
        var best = [Double](repeating: 0, count: width)
        var chosen = [Int32](repeating: -1, count: heads * width)
        for head in 0..<heads {
            var next = [Double](repeating: .infinity, count: width)
            for spent in 0..<width {
                for option in order {
                    let cost = costs[option]
                    if cost > spent { break }
                    let total = best[spent - cost] + errors[head][option]
                    if total < next[spent] {
                        next[spent] = total
                        chosen[head * width + spent] = Int32(option)
                    }
                }
            }
            best = next
        }
        // Trace back from the full capacity.
        var choice = [Int](repeating: 0, count: heads)
        var spent = capacity
        for head in stride(from: heads - 1, through: 0, by: -1) {
            let option = Int(chosen[head * width + spent])
            guard option >= 0 else { return nil }
            choice[head] = option
            spent -= costs[option]
        }
        return choice
    }
}
