import STAGeometry

/// How closely a search agrees with a reference search over the same captures and candidates: the GPU
/// path (`CUDAWindowMeasurer`) against the CPU path, which stays the reference (`sta search --check`).
///
/// **Errors.** For every (step, layer, candidate, head), with d = sparse − full summed over the compared
/// elements of all captures, three sizes are compared: ‖d‖₂ = √Σd², ‖d‖₁ = Σ|d| and ‖full‖₂ = √Σfull². A
/// size x of the search agrees with the reference's y when
///
///     |x − y| ≤ tolerance · max(x, y) + floor · scale,
///
/// scale = ‖full‖₂ of the reference (for ‖d‖₁: ‖full‖₂ · √n, its bound by Cauchy–Schwarz, n elements).
/// The floor covers rounding the two outputs to bf16 on the GPU: each element moves by at most 2⁻⁹ of
/// itself, so ‖d‖₂ moves by at most about 2⁻⁹ (‖sparse‖ + ‖full‖) ≈ 2⁻⁸ ‖full‖ (triangle inequality);
/// the default floor is 2⁻⁸ and the default tolerance 1 %. `worstRatio` is the largest
/// |x − y| / (tolerance · max + floor · scale): at most 1 means every size agrees.
///
/// **Choices.** Both results use the same rule. A head whose window differs is a *near tie* — rounding
/// alone can explain it — when the reference's own ‖d‖₂ of the two windows agree by the same test; under
/// an error tolerance t also when the sparser window's relative error is within the band of t (|r − t| ≤
/// tolerance · max(r, t) + floor); under a density budget also when the reference's total ‖d‖₂ of the
/// (step, layer)'s two sets of choices agree. Any other difference is a *mismatch*.
public struct SearchAgreement: Sendable {
    /// One head whose chosen window differs between the two searches.
    public struct ChoiceDifference: Hashable, Sendable, CustomStringConvertible {
        public let step: Int
        public let layer: Int
        public let head: Int
        public let reference: Window
        public let other: Window
        /// The reference's ‖d‖₂ / ‖full‖₂ under each window.
        public let referenceError: Double
        public let otherError: Double

        public var description: String {
            "step \(step), layer \(layer), head \(head): \(reference) (relative error \(referenceError)) "
                + "vs \(other) (\(otherError), measured by the reference)"
        }
    }

    public let tolerance: Double
    public let floor: Double
    /// (step, layer, candidate, head) entries compared.
    public let comparedEntries: Int
    /// The largest |x − y| / (tolerance · max(x, y) + floor · scale) over every entry and size.
    public let worstRatio: Double
    /// Where `worstRatio` was found, in words.
    public let worstEntry: String
    /// Heads whose windows differ although the reference tells the two windows apart.
    public let mismatches: [ChoiceDifference]
    /// Heads whose windows differ between two windows the reference cannot tell apart.
    public let nearTies: [ChoiceDifference]
    /// Set when the two searches did not measure the same (step, layer) pairs, candidates or heads.
    public let structureProblem: String?

    /// Whether the searches agree: the same structure, every size within the test, no mismatched choice.
    public var passed: Bool { structureProblem == nil && worstRatio <= 1 && mismatches.isEmpty }

    /// Compares `search` with `reference` (same layout and candidates; every capture added to both) and
    /// their results under `rule`. Throws what `result(_:)` throws.
    public init(
        reference: WindowSearch, search: WindowSearch, rule: SelectionRule, tolerance: Double = 0.01,
        floor: Double = 1.0 / 256
    ) throws(WindowSearchError) {
        self.tolerance = tolerance
        self.floor = floor
        var problem: String? = nil
        if reference.candidates != search.candidates {
            problem = "the candidates differ: \(reference.candidates) vs \(search.candidates)"
        } else if Set(reference.errors.keys) != Set(search.errors.keys) {
            problem = "the measured (step, layer) pairs differ"
        }
        var compared = 0
        var worst = 0.0
        var worstEntry = "none"
        if problem == nil {
            for key in reference.errors.keys.sorted() {
                let a = reference.errors[key]!, b = search.errors[key]!
                for candidate in a.indices {
                    guard a[candidate].count == b[candidate].count else {
                        problem = "\(key): \(a[candidate].count) heads vs \(b[candidate].count)"
                        break
                    }
                    for head in a[candidate].indices {
                        let (x, y) = (a[candidate][head], b[candidate][head])
                        guard x.elementCount == y.elementCount else {
                            problem = "\(key), head \(head): \(x.elementCount) compared elements vs \(y.elementCount)"
                            break
                        }
                        compared += 1
                        for (size, ratio) in Self.ratios(x, y, tolerance: tolerance, floor: floor) where ratio > worst {
                            worst = ratio
                            worstEntry = "\(key), \(reference.candidates[candidate]), head \(head), \(size)"
                        }
                    }
                }
            }
        }
        self.structureProblem = problem
        self.comparedEntries = compared
        self.worstRatio = worst
        self.worstEntry = worstEntry

        var mismatches = [ChoiceDifference](), ties = [ChoiceDifference]()
        if problem == nil {
            let ours = Dictionary(
                try search.result(rule).choices.map { (StepLayerHead($0.step, $0.layer, $0.head), $0.window) },
                uniquingKeysWith: { first, _ in first })
            var differing = [StepLayer: [(choice: HeadChoice, other: Window)]]()
            for choice in try reference.result(rule).choices {
                guard let other = ours[StepLayerHead(choice.step, choice.layer, choice.head)], other != choice.window else {
                    continue
                }
                differing[StepLayer(step: choice.step, layer: choice.layer), default: []].append((choice, other))
            }
            for key in differing.keys.sorted() {
                let entries = differing[key]!
                let pairs = entries.map { entry in
                    (
                        mine: Self.error(of: entry.choice.window, in: reference, key: key, head: entry.choice.head),
                        theirs: Self.error(of: entry.other, in: reference, key: key, head: entry.choice.head)
                    )
                }
                // Under a density budget the heads of a (step, layer) are chosen together: the choices tie
                // when the reference's total error of both sets agrees.
                let jointTie: Bool = {
                    guard case .densityBudget = rule else { return false }
                    let mine = pairs.reduce(0) { $0 + $1.mine.squaredError }
                    let theirs = pairs.reduce(0) { $0 + $1.theirs.squaredError }
                    let size = pairs.reduce(0) { $0 + $1.mine.squaredReference }
                    return Self.ratio(
                        mine.squareRoot(), theirs.squareRoot(), scale: size.squareRoot(), tolerance: tolerance,
                        floor: floor) <= 1
                }()
                for (entry, pair) in zip(entries, pairs) {
                    let difference = ChoiceDifference(
                        step: key.step, layer: key.layer, head: entry.choice.head, reference: entry.choice.window,
                        other: entry.other, referenceError: pair.mine.relativeError, otherError: pair.theirs.relativeError)
                    let tie = jointTie
                        || Self.ratio(
                            pair.mine.squaredError.squareRoot(), pair.theirs.squaredError.squareRoot(),
                            scale: pair.mine.squaredReference.squareRoot(), tolerance: tolerance, floor: floor) <= 1
                        || Self.straddles(rule, pair.mine, pair.theirs, sparserFirst: reference.density(of: entry.choice.window)
                            <= reference.density(of: entry.other), tolerance: tolerance, floor: floor)
                    if tie { ties.append(difference) } else { mismatches.append(difference) }
                }
            }
        }
        self.mismatches = mismatches
        self.nearTies = ties
    }

    /// Under an error tolerance t, whether the sparser window's relative error lies within the agreement
    /// band of t: then rounding alone can put it on either side, and either choice is right.
    static func straddles(
        _ rule: SelectionRule, _ mine: OutputError, _ theirs: OutputError, sparserFirst: Bool, tolerance: Double,
        floor: Double
    ) -> Bool {
        guard case let .errorTolerance(threshold) = rule else { return false }
        let sparser = sparserFirst ? mine.relativeError : theirs.relativeError
        return ratio(sparser, threshold, scale: 1, tolerance: tolerance, floor: floor) <= 1
    }

    /// The ratios of the three sizes of `x` (the reference) and `y`.
    static func ratios(_ x: OutputError, _ y: OutputError, tolerance: Double, floor: Double) -> [(String, Double)] {
        let scale = x.squaredReference.squareRoot()
        return [
            ("‖sparse − full‖₂", ratio(x.squaredError.squareRoot(), y.squaredError.squareRoot(), scale: scale, tolerance: tolerance, floor: floor)),
            ("‖sparse − full‖₁", ratio(x.absoluteError, y.absoluteError, scale: scale * Double(x.elementCount).squareRoot(), tolerance: tolerance, floor: floor)),
            ("‖full‖₂", ratio(scale, y.squaredReference.squareRoot(), scale: scale, tolerance: tolerance, floor: floor)),
        ]
    }

    /// |x − y| / (tolerance · max(x, y) + floor · scale); 0 when both are equal, +∞ for a non-finite one.
    static func ratio(_ x: Double, _ y: Double, scale: Double, tolerance: Double, floor: Double) -> Double {
        guard x.isFinite, y.isFinite else { return .infinity }
        if x == y { return 0 }
        let allowed = tolerance * max(abs(x), abs(y)) + floor * scale
        return allowed > 0 ? abs(x - y) / allowed : .infinity
    }

    /// The reference's summed error of `window` on `head` of `key`: its candidate's, or zero error (with
    /// the reference size) for the full window when it is not a candidate.
    static func error(of window: Window, in search: WindowSearch, key: StepLayer, head: Int) -> OutputError {
        let table = search.errors[key] ?? []
        if let index = search.candidates.firstIndex(of: window), index < table.count { return table[index][head] }
        var zero = table.first?[head] ?? .zero
        zero.squaredError = 0
        zero.absoluteError = 0
        return zero
    }
}

/// A (step, layer, head) key.
struct StepLayerHead: Hashable {
    let step: Int, layer: Int, head: Int
    init(_ step: Int, _ layer: Int, _ head: Int) {
        self.step = step
        self.layer = layer
        self.head = head
    }
}
