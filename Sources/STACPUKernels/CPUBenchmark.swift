import Dispatch
import STACPUKernelsC
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Measurement helpers for the CPU backend: a monotonic clock, median timing, and this machine's fp32
/// fused-multiply-add peak. `sta bench --cpu` and benchmarks/cpu/ are built on it.
public enum CPUBenchmark {
    /// Seconds on the monotonic clock.
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// CPU seconds used by all threads of this process so far.
    public static func processCPUTime() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// Wall-clock samples of repeated runs, and the CPU time the process used in each (on a busy machine
    /// CPU time / wall time shows how many cores the runs actually got).
    public struct Timing: Sendable, CustomStringConvertible {
        /// Seconds per run, in the order measured.
        public let samples: [Double]
        /// Process CPU seconds per run (all threads), in the same order.
        public let cpuSamples: [Double]

        public init(samples: [Double], cpuSamples: [Double] = []) {
            self.samples = samples
            self.cpuSamples = cpuSamples
        }

        /// Median of the CPU seconds per run.
        public var medianCPU: Double { Timing(samples: cpuSamples).median }

        public var median: Double {
            let sorted = samples.sorted()
            guard !sorted.isEmpty else { return .nan }
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }

        public var minimum: Double { samples.min() ?? .nan }

        public var description: String {
            "median \(formatMilliseconds(median)) (min \(formatMilliseconds(minimum)), \(samples.count) runs"
                + (cpuSamples.isEmpty ? ")" : ", \(formatFixed(medianCPU / median, digits: 2)) cores busy)")
        }
    }

    /// Runs `body` `warmup` times untimed, then `repetitions` times timed.
    public static func time<E: Error>(
        warmup: Int = 1, repetitions: Int, _ body: () throws(E) -> Void
    ) throws(E) -> Timing {
        for _ in 0..<warmup { try body() }
        var samples = [Double]()
        var cpuSamples = [Double]()
        for _ in 0..<max(1, repetitions) {
            let start = now()
            let cpuStart = processCPUTime()
            try body()
            cpuSamples.append(processCPUTime() - cpuStart)
            samples.append(now() - start)
        }
        return Timing(samples: samples, cpuSamples: cpuSamples)
    }

    /// The fp32 multiply-add rate the cores sustain.
    public struct PeakFMA: Sendable, CustomStringConvertible {
        public let threads: Int
        /// Floating-point operations per second over all threads (one FMA = 2 operations).
        public let flopsPerSecond: Double
        public let seconds: Double

        public var description: String {
            "\(formatRate(flopsPerSecond)) fp32 FMA peak on \(threads) thread\(threads == 1 ? "" : "s")"
                + " (\(formatRate(flopsPerSecond / Double(threads))) per thread)"
        }
    }

    /// Measures the fp32 FMA peak: every thread runs 12 independent chains of 8-lane fused multiply-adds
    /// (enough to cover the latency of two FMA pipes) for `iterations` steps. Takes about
    /// iterations · 12 / (2 · clock) seconds: 0.2 s per 40 million iterations at 2.5 GHz.
    public static func peakFMA(threads: Int? = nil, iterations: Int = 40_000_000) -> PeakFMA {
        let threads = max(1, threads ?? CPUAttention.defaultThreadCount)
        _ = fmaChains(iterations: iterations / 20, seed: 1)  // Wake the core up.
        let sink = Atomic<UInt32>(0)
        let start = now()
        if threads == 1 {
            sink.store(fmaChains(iterations: iterations, seed: 0).bitPattern, ordering: .relaxed)
        } else {
            DispatchQueue.concurrentPerform(iterations: threads) { index in
                let value = fmaChains(iterations: iterations, seed: Float(index))
                sink.store(value.bitPattern, ordering: .relaxed)
            }
        }
        let seconds = now() - start
        let operations = Double(threads) * Double(iterations) * 12 * 8 * 2
        return PeakFMA(threads: threads, flopsPerSecond: operations / seconds, seconds: seconds)
    }

    /// The probe's chains, in the C micro-kernels (the same instruction set the attention kernels use).
    static func fmaChains(iterations: Int, seed: Float) -> Float {
        sta_cpu_fma_chains(sta_cpu_best_level(), iterations, seed)
    }
}

func formatMilliseconds(_ seconds: Double) -> String {
    formatFixed(seconds * 1e3, digits: seconds < 0.01 ? 3 : 1) + " ms"
}

func formatRate(_ flopsPerSecond: Double) -> String {
    formatFixed(flopsPerSecond / 1e9, digits: 1) + " GFLOP/s"
}

/// `value` with `digits` decimals, without Foundation.
func formatFixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    var text = (value < 0 ? "-" : "") + "\(whole)"
    if digits > 0 {
        let fraction = Int(scaled - Double(whole) * scale)
        let fractionText = "\(fraction)"
        text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
    }
    return text
}
