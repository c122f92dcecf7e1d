import ArgumentParser
import STATensors
import STACPUKernels
import SlidingTileAttention
import STATooling

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the GPU kernels on a suite (median of CUDA-event timings after warm-up), or the CPU backend with --cpu.")

    @OptionGroup var problem: ProblemOptions

    @Option(help: "Only problems whose name contains this text (e.g. 3x3x3).")
    var only: String?

    @Option(help: "Timed repetitions per problem.")
    var repetitions: Int = 10

    @Option(help: "Untimed launches before timing.")
    var warmups: Int = 3

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @Flag(help: "Run the CPU benchmark instead: the FMA peak, dense fp32 attention (S 4096, D 128, 8 heads) and STA at 91% sparsity against dense on the same tokens.")
    var cpu = false

    @Flag(help: "Time the backward pass (portable kernels; effective FLOPs 2.5 × the forward's) instead of the forward.")
    var backward = false

    @Flag(help: "With --cpu: fewer repetitions, no half-precision runs.")
    var quick = false

    @Option(help: "With --cpu: threads to use (default: all cores).")
    var threads: Int?

    @Option(help: "Kernels to time: all (every kernel this GPU runs), automatic, portable or hopper.")
    var kernel: String = "all"

    func run() throws {
        if cpu { return try runCPU() }
        var problems = try problem.problems()
        if let only { problems = problems.filter { $0.name.contains(only) } }
        guard !problems.isEmpty else { throw ValidationError("no problem matches --only \(only ?? "")") }
        guard repetitions >= 1, warmups >= 0 else { throw ValidationError("--repetitions must be ≥ 1 and --warmups ≥ 0") }
        let gpu = try CUDABackend(ordinal: 0)
        print("bench on \(gpu.context.deviceName) (\(gpu.context.architecture), \(gpu.context.multiprocessorCount) SMs)")
        var matrixRate: Double? = nil
        do {
            let rate = try GPUBenchmark.matrixProductRate(on: gpu)
            matrixRate = rate.teraFLOPsPerSecond
            print("  bf16 matrix product 8192³ (cuBLAS): \(fixed(rate.milliseconds, 3)) ms, \(fixed(rate.teraFLOPsPerSecond, 1)) TFLOP/s")
        } catch {
            print("  bf16 matrix-product rate not measured: \(error)")
        }
        let measurements = backward
            ? try GPUBenchmark.runBackward(
                problems: problems, on: gpu, warmups: warmups, repetitions: repetitions, progress: { print("  \($0)") })
            : try GPUBenchmark.run(
                problems: problems, kernels: try kernelChoices(kernel, on: gpu), on: gpu, warmups: warmups,
                repetitions: repetitions, progress: { print("  \($0)") })
        var table = TextTable("problem", "kernel", "S", "sparsity", "median ms", "min ms", "eff. TFLOP/s", "of matmul")
        for m in measurements {
            table.append(
                m.problem, "\(m.kernel)", "\(m.sequenceLength)", fixed(m.videoSparsity * 100, 1) + "%", fixed(m.medianMilliseconds, 2),
                fixed(m.minMilliseconds, 2), fixed(m.teraFLOPsPerSecond, 1),
                matrixRate.map { fixed(m.teraFLOPsPerSecond / $0 * 100, 1) + "%" } ?? "-")
        }
        print(table.rendered)
        if let json {
            let records = measurements.map { m in
                JSONValue.object([
                    ("problem", .string(m.problem)), ("kernel", .string("\(m.kernel)")), ("sequence_length", .integer(m.sequenceLength)),
                    ("video_sparsity", .real(m.videoSparsity)), ("median_ms", .real(m.medianMilliseconds)),
                    ("min_ms", .real(m.minMilliseconds)), ("effective_flops", .real(m.effectiveFLOPs)),
                    ("tflops", .real(m.teraFLOPsPerSecond)),
                ])
            }
            try writeText(JSONValue.object([
                ("device", .string(gpu.context.deviceName)),
                ("matmul_bf16_tflops", matrixRate.map { .real($0) } ?? .string("not measured")),
                ("results", .array(records)),
            ]).serialized + "\n", to: json)
        }
    }
}

extension Bench {
    func runCPU() throws {
        guard threads.map({ $0 >= 1 }) ?? true else { throw ValidationError("--threads must be at least 1") }
        var configuration = CPUBenchmark.SuiteConfiguration()
        configuration.threads = threads
        if quick {
            configuration.repetitions = 3
            configuration.denseOverCanvasRepetitions = 1
            configuration.includeHalfPrecision = false
        }
        let report = try CPUBenchmark.runSuite(configuration, log: { print("  \($0)") })
        print(report)
        if let json {
            try writeText(JSONValue.object([
                ("peak_fma_flops", .real(report.peak.flopsPerSecond)),
                ("dense_fp32_flops", .real(report.dense.flopsPerSecond)),
                ("dense_fraction_of_peak", .real(report.denseFractionOfPeak)),
                ("sta_density", .real(report.staDensity)), ("sta_speedup_over_dense", .real(report.staSpeedup)),
            ]).serialized + "\n", to: json)
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
