import ArgumentParser
import STATensors
import STACPUKernels
import SlidingTileAttention
import STAGeometry
import STATooling

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the GPU kernels on a suite (median of CUDA-event timings after warm-up), or the CPU backend with --cpu.")

    @OptionGroup var problem: ProblemOptions

    @Option(help: "Only problems whose name contains this text (e.g. 3x3x3).")
    var only: String?

    @Option(help: "Timed repetitions per problem, 1...\(STALimits.maximumRepetitions). Default 10.")
    var repetitions: Int?

    @Option(help: "Untimed launches before timing, 0...\(STALimits.maximumRepetitions). Default 3.")
    var warmups: Int?

    @Option(help: "Idle milliseconds before each problem is timed and before the matrix product the rates are compared with, 0...60000, so that all start from an idle card. Default \(GPUBenchmark.defaultPauseMilliseconds).")
    var pause: Int?

    @Flag(help: "Print the results as JSON on standard output instead of the table (progress stays on standard error).")
    var json = false

    @Flag(help: "Run the CPU benchmark instead: the FMA peak, dense fp32 attention (S 4096, D 128, 8 heads) and STA at 91% sparsity against dense on the same tokens.")
    var cpu = false

    @Flag(help: "Time the backward pass (effective FLOPs 2.5 × the forward's) instead of the forward; --kernel picks the backward kernels (the Hopper backward is not bit-reproducible, the portable one is).")
    var backward = false

    @Flag(help: "With --cpu: fewer repetitions, no half-precision runs.")
    var quick = false

    @Option(help: "With --cpu: threads to use, 1...\(STALimits.maximumThreads) (default: all cores).")
    var threads: Int?

    @Option(help: "Kernels to time: all (every kernel this GPU runs), automatic, portable or hopper. Default all.")
    var kernel: String?

    @Option(help: "A baseline written by `sta bench --json`: each problem's rate, as a share of the same run's matrix rate, against the baseline's; exit 1 on a regression.")
    var compare: String?

    @Option(help: "With --compare: the largest accepted drop of a problem's share of the matrix rate, as a fraction. Default 0.03.")
    var tolerance: Double?

    /// Options that only the GPU benchmark uses, by name, when given.
    private var gpuOnlyOptions: [String] {
        problem.givenOptions + [
            only.map { _ in "--only" }, repetitions.map { _ in "--repetitions" }, warmups.map { _ in "--warmups" },
            pause.map { _ in "--pause" },
            backward ? "--backward" : nil, kernel.map { _ in "--kernel" }, compare.map { _ in "--compare" },
            tolerance.map { _ in "--tolerance" },
        ].compactMap { $0 }
    }

    func run() throws {
        if cpu {
            try rejectIgnored(gpuOnlyOptions, by: "bench --cpu (a fixed CPU suite)")
            return try runCPU()
        }
        try rejectIgnored([quick ? "--quick" : nil, threads.map { _ in "--threads" }].compactMap { $0 }, by: "bench on the GPU (give --cpu)")
        let repetitions = try STALimits.check(
            self.repetitions ?? 10, "--repetitions", minimum: 1, maximum: STALimits.maximumRepetitions)
        let warmups = try STALimits.check(self.warmups ?? 3, "--warmups", minimum: 0, maximum: STALimits.maximumRepetitions)
        let pause = try STALimits.check(
            self.pause ?? GPUBenchmark.defaultPauseMilliseconds, "--pause", minimum: 0, maximum: 60000)
        let tolerance = self.tolerance ?? 0.03
        guard tolerance >= 0, tolerance < 1 else { throw UsageError("--tolerance is \(tolerance); give a fraction in [0, 1)") }
        // The baseline is read before minutes of work, so a wrong path fails at once.
        let baseline = try compare.map { try readTextFile($0) }
        var problems = try problem.problems()
        if let only { problems = problems.filter { $0.name.contains(only) } }
        guard !problems.isEmpty else { throw ValidationError("no problem matches --only \(only ?? "")") }
        let gpu = try CUDABackend(ordinal: 0)
        let kernels = try kernelChoices(kernel ?? "all", direction: backward ? .backward : .forward, on: gpu)
        progress("bench on \(gpu.context.deviceName) (\(gpu.context.architecture), \(gpu.context.multiprocessorCount) SMs)")
        // The matrix-product rate from idle, after the same pause as each problem (the rate shares and
        // --compare use), then after a second of back-to-back products, at the power limit where long
        // kernels run.
        var matrixRate: Double? = nil
        var sustainedRate: Double? = nil
        for sustain in [0.0, 1000.0] {
            do {
                let rate = try GPUBenchmark.matrixProductRate(
                    on: gpu, sustainMilliseconds: sustain, pauseMilliseconds: sustain == 0 ? pause : 0)
                if sustain == 0 { matrixRate = rate.teraFLOPsPerSecond } else { sustainedRate = rate.teraFLOPsPerSecond }
                progress("  bf16 matrix product 8192³ (cuBLAS\(sustain == 0 ? "" : ", after \(Int(sustain)) ms of products")): \(fixed(rate.milliseconds, 3)) ms, \(fixed(rate.teraFLOPsPerSecond, 1)) TFLOP/s")
            } catch {
                progress("  bf16 matrix-product rate not measured: \(error)")
            }
        }
        let measurements = backward
            ? try GPUBenchmark.runBackward(
                problems: problems, kernels: kernels, on: gpu, warmups: warmups, repetitions: repetitions,
                pauseMilliseconds: pause, progress: { progress("  \($0)") })
            : try GPUBenchmark.run(
                problems: problems, kernels: kernels, on: gpu, warmups: warmups,
                repetitions: repetitions, pauseMilliseconds: pause, progress: { progress("  \($0)") })
        if json {
            let records = measurements.map { m in
                JSONValue.object([
                    ("problem", .string(m.problem)), ("kernel", .string("\(m.kernel)")), ("sequence_length", .integer(m.sequenceLength)),
                    ("video_sparsity", .real(m.videoSparsity)), ("median_ms", .real(m.medianMilliseconds)),
                    ("min_ms", .real(m.minMilliseconds)), ("effective_flops", .real(m.effectiveFLOPs)),
                    ("tflops", .real(m.teraFLOPsPerSecond)),
                ])
            }
            print(JSONValue.object([
                ("device", .string(gpu.context.deviceName)),
                ("matmul_bf16_tflops", matrixRate.map { .real($0) } ?? .string("not measured")),
                ("matmul_bf16_sustained_tflops", sustainedRate.map { .real($0) } ?? .string("not measured")),
                ("results", .array(records)),
            ]).serialized)
        } else {
            var table = TextTable(
                "problem", "kernel", "S", "sparsity", "median ms", "min ms", "eff. TFLOP/s", "of matmul", "of sustained")
            for m in measurements {
                table.append(
                    m.problem, "\(m.kernel)", "\(m.sequenceLength)", fixed(m.videoSparsity * 100, 1) + "%", fixed(m.medianMilliseconds, 2),
                    fixed(m.minMilliseconds, 2), fixed(m.teraFLOPsPerSecond, 1),
                    matrixRate.map { fixed(m.teraFLOPsPerSecond / $0 * 100, 1) + "%" } ?? "-",
                    sustainedRate.map { fixed(m.teraFLOPsPerSecond / $0 * 100, 1) + "%" } ?? "-")
            }
            print(table.rendered)
        }
        if let baseline, let path = compare {
            try compareWithBaseline(measurements, matrixRate: matrixRate, baseline: baseline, path: path, tolerance: tolerance)
        }
    }

    /// Prints (on standard error with `--json`, else standard output) each problem's share of the matrix
    /// rate against the baseline's, with the ratio of the raw rates beside it; exits 1 when a share dropped
    /// by more than `tolerance`, or when nothing could be compared.
    func compareWithBaseline(
        _ measurements: [GPUBenchmark.Measurement], matrixRate: Double?, baseline: String, path: String, tolerance: Double
    ) throws {
        let say: (String) -> Void = json ? { progress($0) } : { print($0) }
        guard let matrixRate else {
            say("error: --compare needs this run's matrix-product rate, which was not measured")
            throw ExitCode.failure
        }
        let comparison: BenchmarkComparison
        do {
            comparison = try BenchmarkComparison(
                measurements: measurements.map { ($0.problem, "\($0.kernel)", $0.teraFLOPsPerSecond) },
                matrixRate: matrixRate, baseline: baseline)
        } catch {
            throw UsageError("--compare \(path): \(error)")
        }
        let regressions = comparison.regressions(tolerance: tolerance)
        var table = TextTable("problem", "kernel", "of matmul", "baseline", "ratio", "rate ratio", "result")
        for row in comparison.rows {
            let regressed = regressions.contains { $0.problem == row.problem && $0.kernel == row.kernel }
            table.append(
                row.problem, row.kernel, fixed(row.share * 100, 1) + "%", fixed(row.baselineShare * 100, 1) + "%",
                fixed(row.ratio, 3), fixed(row.rateRatio, 3), regressed ? "REGRESSION" : "ok")
        }
        say("against \(path) (tolerance \(fixed(tolerance * 100, 1))% on the share; matrix product "
            + "\(fixed(matrixRate, 1)) TFLOP/s now, \(fixed(comparison.baselineMatrixRate, 1)) in the baseline):")
        say(table.rendered)
        if !comparison.unmatched.isEmpty { say("not in the baseline: \(comparison.unmatched.joined(separator: ", "))") }
        if comparison.rows.isEmpty {
            say("error: no problem of this run is in the baseline")
            throw ExitCode.failure
        }
        if !regressions.isEmpty {
            say("\(regressions.count) regression(s) beyond \(fixed(tolerance * 100, 1))%")
            throw ExitCode.failure
        }
    }
}

extension Bench {
    func runCPU() throws {
        var configuration = CPUBenchmark.SuiteConfiguration()
        configuration.threads = try threads.map { try STALimits.check($0, "--threads", minimum: 1, maximum: STALimits.maximumThreads) }
        if quick {
            configuration.repetitions = 3
            configuration.denseOverCanvasRepetitions = 1
            configuration.includeHalfPrecision = false
        }
        let report = try CPUBenchmark.runSuite(configuration, log: { progress("  \($0)") })
        if json {
            print(JSONValue.object([
                ("peak_fma_flops", .real(report.peak.flopsPerSecond)),
                ("dense_fp32_flops", .real(report.dense.flopsPerSecond)),
                ("dense_fraction_of_peak", .real(report.denseFractionOfPeak)),
                ("sta_density", .real(report.staDensity)), ("sta_speedup_over_dense", .real(report.staSpeedup)),
            ]).serialized)
        } else {
            print(report)
        }
    }
}

/// The kernels `--kernel` names for `direction` on `gpu`: `all` is every kernel that runs there; a name
/// (`automatic`/`auto`, `portable`, `hopper`) is the kernel `KernelSelection` chooses for it on this device
/// (a bf16 call at head dim 128), with its refusal as the error.
func kernelChoices(_ name: String, direction: AttentionDirection = .forward, on gpu: CUDABackend) throws -> [AttentionKernel] {
    if name == "all" { return KernelSelection.cudaKernels(direction, on: gpu.properties) }
    let preference = try KernelPreference(name: name)
    guard preference != .cpu else { throw ValidationError("kernel 'cpu' is not a GPU kernel; use --cpu") }
    if let kernel = preference.kernel {
        // A named kernel: refused here with the selection's message when it cannot run on this device.
        guard KernelSelection.cudaKernels(direction, on: gpu.properties).contains(kernel) else {
            throw ValidationError("the \(kernel) kernel does not run \(direction) attention on \(gpu.properties)")
        }
        return [kernel]
    }
    guard let first = KernelSelection.automaticKernel(direction, on: gpu.properties) else {
        throw ValidationError("no CUDA kernel runs \(direction) attention on \(gpu.properties)")
    }
    return [first]
}
