import ArgumentParser
import SlidingTileAttention
import STATooling

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The main job: an embedded STA problem on the GPU if there is one, else the CPU, checked against the float64 reference.")

    @Flag(help: "Run on the CPU even when a GPU is present.")
    var cpu = false

    func run() throws {
        let (backend, reason): (AttentionBackend, String?) = cpu ? (.cpu(threads: nil), "--cpu given") : AttentionBackend.best()
        if let reason { print("backend: \(backend) — GPU not used: \(reason)") } else { print("backend: \(backend)") }
        let report = try Demonstration.run(on: backend)
        let plan = report.plan
        let layout = plan.layout
        var table = TextTable("item", "value")
        table.append("problem", report.problem.name)
        table.append("layout", "\(layout)")
        table.append("tensors [B, H, S, D]", "[\(report.problem.batch), \(plan.heads), \(layout.sequenceLength), \(report.problem.headDim)] \(report.problem.dtype)")
        table.append("key tiles per query tile", "\(plan.windows[0].tileCount) of \(layout.tileCount)")
        table.append("video sparsity", fixed(plan.videoSparsity * 100, 2) + "%")
        table.append("effective GFLOP", fixed(plan.effectiveFLOPs(batch: report.problem.batch, headDim: report.problem.headDim) / 1e9, 2))
        table.append("time (one forward, wall clock)", fixed(report.milliseconds, 2) + " ms")
        table.append("effective GFLOP/s", fixed(report.gigaFLOPsPerSecond, 1))
        table.append("rel. error vs float64 (\(report.sampledRows) sampled rows/head)", scientific(report.outputError) + " (bound " + scientific(report.tolerance) + ")")
        table.append("max |lse − ref|", scientific(report.lseError))
        table.append("result", report.passed ? "PASS" : "FAIL")
        print(table.rendered)
        if !report.passed { throw ExitCode.failure }
    }
}
