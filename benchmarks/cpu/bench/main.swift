// sta-cpu-bench: runs CPUBenchmark's suite. Options: --quick (fewer runs, no half precision),
// --threads N, --peak-only, --dense-only, --sta-only.
import STACPUKernels
import STAGeometry

var configuration = CPUBenchmark.SuiteConfiguration()
var arguments = CommandLine.arguments.dropFirst()
var mode = "suite"
while let argument = arguments.popFirst() {
    switch argument {
    case "--quick":
        configuration.repetitions = 3
        configuration.denseOverCanvasRepetitions = 1
        configuration.includeHalfPrecision = false
    case "--threads":
        configuration.threads = arguments.popFirst().flatMap { Int($0) }
    case "--peak-only": mode = "peak"
    case "--dense-only": mode = "dense"
    case "--sta-only": mode = "sta"
    default:
        print("unknown option \(argument); options: --quick, --threads N, --peak-only, --dense-only")
    }
}
switch mode {
case "peak":
    print(CPUBenchmark.peakFMA(threads: configuration.threads))
    print(CPUBenchmark.peakFMA(threads: 1))
case "dense":
    let plan = try CPUAttention.densePlan(heads: configuration.denseHeads, sequenceLength: configuration.denseSequenceLength)
    print(try CPUBenchmark.measure("dense fp32", plan: plan, headDim: configuration.headDim, as: Float.self,
        repetitions: configuration.repetitions, threads: configuration.threads))
case "sta":
    let layout = try STALayout(canvas: configuration.staCanvas, tile: configuration.staTile)
    let plan = try AttentionPlan(layout: layout, window: Window(tiles: configuration.staWindow), heads: configuration.staHeads)
    print(try CPUBenchmark.measure("sta fp32", plan: plan, headDim: configuration.headDim, as: Float.self,
        repetitions: configuration.repetitions, threads: configuration.threads))
default:
    let report = try CPUBenchmark.runSuite(configuration)
    print("---")
    print(report)
}
