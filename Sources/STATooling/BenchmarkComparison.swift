import STATensors

/// A benchmark run against a committed baseline (`sta bench --json` output), problem by problem.
///
/// Rates are compared as shares of each run's own matrix-product rate (`matmul_bf16_tflops`), so a
/// baseline taken on another day, with other clocks, still compares: `ratio` = (tflops / matmul) now ÷
/// (tflops / matmul) then. Problems are matched by `problem` and `kernel`. The two matrix rates differ from
/// call to call by more than a kernel's own spread (757–815 TFLOP/s across the H200 calls of 2026-12-02),
/// so each row also carries the ratio of the raw rates, which tells a share that fell with a faster
/// matrix product from a kernel that slowed down.
public struct BenchmarkComparison: Sendable {
    /// One problem found in both runs.
    public struct Row: Sendable {
        public let problem: String
        public let kernel: String
        /// Share of the matrix rate now and in the baseline.
        public let share: Double
        public let baselineShare: Double
        /// This run's matrix rate over the baseline's.
        public let matrixRatio: Double
        public var ratio: Double { share / baselineShare }
        /// The effective rate now over the baseline's (`ratio` · `matrixRatio`).
        public var rateRatio: Double { ratio * matrixRatio }
    }

    /// Why a baseline could not be read.
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let rows: [Row]
    /// The baseline's matrix rate (TFLOP/s).
    public let baselineMatrixRate: Double
    /// Problems of this run that the baseline does not have.
    public let unmatched: [String]

    /// One measurement of the run being compared: its problem, kernel and effective rate.
    public typealias Measurement = (problem: String, kernel: String, teraFLOPsPerSecond: Double)

    /// Compares `measurements`, taken with matrix rate `matrixRate` (TFLOP/s), with `baseline`, the
    /// JSON text `sta bench --json` writes. Throws `FormatError` naming the missing or malformed field.
    public init(measurements: [Measurement], matrixRate: Double, baseline text: String) throws {
        let baseline: JSONValue
        do { baseline = try JSONValue.parse(text) } catch {
            throw FormatError(description: "the baseline is not JSON: \(error)")
        }
        guard let baseRate = Self.number(baseline["matmul_bf16_tflops"]), baseRate > 0 else {
            throw FormatError(description: "the baseline has no positive \"matmul_bf16_tflops\" (is it `sta bench --json` output?)")
        }
        guard case let .array(results)? = baseline["results"] else {
            throw FormatError(description: "the baseline has no \"results\" array (is it `sta bench --json` output?)")
        }
        var shares = [String: Double]()
        for (index, result) in results.enumerated() {
            guard case let .string(problem)? = result["problem"], case let .string(kernel)? = result["kernel"],
                let rate = Self.number(result["tflops"])
            else {
                throw FormatError(description: "baseline result \(index) lacks \"problem\", \"kernel\" or \"tflops\"")
            }
            shares[Self.key(problem, kernel)] = rate / baseRate
        }
        var rows = [Row]()
        var unmatched = [String]()
        for m in measurements {
            if let baselineShare = shares[Self.key(m.problem, m.kernel)] {
                rows.append(Row(
                    problem: m.problem, kernel: m.kernel, share: m.teraFLOPsPerSecond / matrixRate,
                    baselineShare: baselineShare, matrixRatio: matrixRate / baseRate))
            } else {
                unmatched.append("\(m.problem) (\(m.kernel))")
            }
        }
        self.rows = rows
        self.unmatched = unmatched
        self.baselineMatrixRate = baseRate
    }

    /// Rows whose ratio is below 1 − `tolerance`: the regressions.
    public func regressions(tolerance: Double) -> [Row] { rows.filter { !($0.ratio >= 1 - tolerance) } }

    private static func key(_ problem: String, _ kernel: String) -> String { problem + "\u{0}" + kernel }

    private static func number(_ value: JSONValue?) -> Double? {
        guard case let .number(text)? = value else { return nil }
        return Double(text)
    }
}
