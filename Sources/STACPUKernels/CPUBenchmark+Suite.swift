import STAGeometry
import STATensors

extension CPUBenchmark {
    /// What `runSuite` measures. The defaults are the CPU benchmark of benchmarks/cpu/: dense fp32
    /// attention at S = 4096, D = 128, 8 heads, and STA with window 3×3×3 tiles on a 20×24×40 canvas
    /// (tile grid 5×6×10 of 4×4×4 tiles, 19,200 tokens, 91 % sparse) next to dense attention over the same
    /// tokens.
    public struct SuiteConfiguration: Sendable {
        public var threads: Int? = nil
        public var repetitions = 5
        public var headDim = 128
        public var denseSequenceLength = 4096
        public var denseHeads = 8
        public var staCanvas = [20, 24, 40]
        public var staTile = [4, 4, 4]
        public var staWindow = [3, 3, 3]
        public var staHeads = 2
        /// Runs of the (slow) dense attention over the STA canvas's tokens.
        public var denseOverCanvasRepetitions = 3
        /// Also time fp16 and bf16 storage on the dense problem.
        public var includeHalfPrecision = true

        public init() {}
    }

    /// One timed attention problem.
    public struct AttentionMeasurement: Sendable, CustomStringConvertible {
        public let name: String
        public let timing: Timing
        /// Effective floating-point operations of one run (spec §3).
        public let effectiveFLOPs: Double

        public var flopsPerSecond: Double { effectiveFLOPs / timing.median }
        /// Effective operations per CPU-second of one core: the rate per core the code reaches when it
        /// gets the core, independent of other load on the machine.
        public var flopsPerCPUSecond: Double { effectiveFLOPs / timing.medianCPU }
        public var description: String {
            "\(name): \(timing), \(formatRate(flopsPerSecond)) effective, \(formatRate(flopsPerCPUSecond)) per busy core"
        }
    }

    /// Everything `runSuite` measured.
    public struct SuiteReport: Sendable, CustomStringConvertible {
        public let peak: PeakFMA
        public let peakOneThread: PeakFMA
        public let dense: AttentionMeasurement
        public let denseHalf: [AttentionMeasurement]
        public let sta: AttentionMeasurement
        public let denseOverCanvas: AttentionMeasurement
        /// Attended video pairs over all pairs of the STA canvas.
        public let staDensity: Double

        /// Dense fp32 effective rate as a fraction of the FMA peak.
        public var denseFractionOfPeak: Double { dense.flopsPerSecond / peak.flopsPerSecond }
        /// Wall-clock speedup of STA over dense attention on the same tokens.
        public var staSpeedup: Double { denseOverCanvas.timing.median / sta.timing.median }
        /// Speedup as a fraction of the ideal 1 / density.
        public var staSpeedupFractionOfIdeal: Double { staSpeedup * staDensity }

        public var description: String {
            var lines = [
                "kernels: \(CPUAttention.instructionSet)",
                "peak: \(peak)",
                "peak (1 thread): \(peakOneThread)",
                "\(dense) = \(formatFixed(100 * denseFractionOfPeak, digits: 1)) % of peak",
            ]
            for measurement in denseHalf {
                lines.append(
                    "\(measurement) = \(formatFixed(100 * measurement.flopsPerSecond / peak.flopsPerSecond, digits: 1)) % of peak")
            }
            lines.append("\(sta) = \(formatFixed(100 * sta.flopsPerSecond / peak.flopsPerSecond, digits: 1)) % of peak")
            lines.append("\(denseOverCanvas)")
            lines.append(
                "STA speedup over dense on the same tokens: \(formatFixed(staSpeedup, digits: 2))× "
                    + "(density \(formatFixed(100 * staDensity, digits: 2)) %, ideal \(formatFixed(1 / staDensity, digits: 2))×, "
                    + "achieved \(formatFixed(100 * staSpeedupFractionOfIdeal, digits: 1)) % of ideal)")
            return lines.joined(separator: "\n")
        }
    }

    /// Times `plan` on random inputs of storage type `T` (median of `repetitions` after one warm-up run).
    public static func measure<T: StorageScalar>(
        _ name: String, plan: AttentionPlan, batch: Int = 1, headDim: Int, as _: T.Type,
        repetitions: Int, threads: Int? = nil
    ) throws(CPUAttentionError) -> AttentionMeasurement {
        let rows = batch * plan.heads * plan.layout.sequenceLength
        let q: [T] = randomInputs(rows * headDim, seed: 1)
        let k: [T] = randomInputs(rows * headDim, seed: 2)
        let v: [T] = randomInputs(rows * headDim, seed: 3)
        var output = [T](repeating: T(0), count: rows * headDim)
        var lse = [Float](repeating: 0, count: rows)
        let timing = try q.withUnsafeBufferPointer { (qp) throws(CPUAttentionError) in
            try k.withUnsafeBufferPointer { (kp) throws(CPUAttentionError) in
                try v.withUnsafeBufferPointer { (vp) throws(CPUAttentionError) in
                    try output.withUnsafeMutableBufferPointer { (op) throws(CPUAttentionError) in
                        try lse.withUnsafeMutableBufferPointer { (lp) throws(CPUAttentionError) in
                            try time(repetitions: repetitions) { () throws(CPUAttentionError) in
                                try CPUAttention.forward(
                                    plan: plan, batch: batch, headDim: headDim, q: qp, k: kp, v: vp, output: op,
                                    lse: lp, threads: threads)
                            }
                        }
                    }
                }
            }
        }
        return AttentionMeasurement(
            name: name, timing: timing, effectiveFLOPs: plan.effectiveFLOPs(batch: batch, headDim: headDim))
    }

    /// Runs the whole CPU suite, reporting progress through `log`.
    public static func runSuite(
        _ configuration: SuiteConfiguration = SuiteConfiguration(), log: (String) -> Void = { print($0) }
    ) throws(CPUAttentionError) -> SuiteReport {
        let c = configuration
        let threads = c.threads ?? CPUAttention.defaultThreadCount
        let peak = peakFMA(threads: threads)
        log("kernels: \(CPUAttention.instructionSet)")
        log("peak: \(peak)")
        let peakOneThread = peakFMA(threads: 1)
        log("peak (1 thread): \(peakOneThread)")

        let densePlan = try CPUAttention.densePlan(heads: c.denseHeads, sequenceLength: c.denseSequenceLength)
        let denseName = "dense S=\(c.denseSequenceLength) D=\(c.headDim) H=\(c.denseHeads) B=1"
        let dense = try measure(
            "\(denseName) fp32", plan: densePlan, headDim: c.headDim, as: Float.self, repetitions: c.repetitions,
            threads: threads)
        log("\(dense)")
        var denseHalf = [AttentionMeasurement]()
        if c.includeHalfPrecision {
            denseHalf.append(
                try measure(
                    "\(denseName) fp16", plan: densePlan, headDim: c.headDim, as: Float16.self,
                    repetitions: c.repetitions, threads: threads))
            log("\(denseHalf[0])")
            denseHalf.append(
                try measure(
                    "\(denseName) bf16", plan: densePlan, headDim: c.headDim, as: BFloat16.self,
                    repetitions: c.repetitions, threads: threads))
            log("\(denseHalf[1])")
        }

        let staPlan: AttentionPlan
        do {
            let layout = try STALayout(canvas: c.staCanvas, tile: c.staTile)
            staPlan = try AttentionPlan(layout: layout, window: Window(tiles: c.staWindow), heads: c.staHeads)
        } catch {
            throw .geometry(error)
        }
        let layout = staPlan.layout
        let canvasName = "canvas \(layout.canvas) tile \(layout.tile) (\(layout.videoTokenCount) tokens)"
        let sta = try measure(
            "STA \(canvasName) window \(Window(tiles: c.staWindow)) D=\(c.headDim) H=\(c.staHeads) fp32",
            plan: staPlan, headDim: c.headDim, as: Float.self, repetitions: c.repetitions, threads: threads)
        log("\(sta)")
        let overCanvasPlan = try CPUAttention.densePlan(heads: c.staHeads, sequenceLength: layout.videoTokenCount)
        let denseOverCanvas = try measure(
            "dense over the same \(layout.videoTokenCount) tokens D=\(c.headDim) H=\(c.staHeads) fp32",
            plan: overCanvasPlan, headDim: c.headDim, as: Float.self, repetitions: c.denseOverCanvasRepetitions,
            threads: threads)
        log("\(denseOverCanvas)")
        let density = 1 - staPlan.videoSparsity
        return SuiteReport(
            peak: peak, peakOneThread: peakOneThread, dense: dense, denseHalf: denseHalf, sta: sta,
            denseOverCanvas: denseOverCanvas, staDensity: density)
    }

    /// Uniform values in [-2, 2) from a fixed-seed xorshift generator (fast enough for millions).
    static func randomInputs<T: StorageScalar>(_ count: Int, seed: UInt64) -> [T] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var values = [T]()
        values.reserveCapacity(count)
        for _ in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            values.append(T(Float(state >> 40) * (4 / 16_777_216) - 2))
        }
        return values
    }
}
