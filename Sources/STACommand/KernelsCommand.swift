import ArgumentParser
import CUDADriver
import SlidingTileAttention
import STATooling
import STACUDAKernels
import STATensors

struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile every kernel specialisation the suites and the verify matrix use; report registers and spills.",
        discussion: "Needs NVRTC only (no GPU). Fails on any compile error, local-memory spill or stack frame.")

    @Option(name: .customLong("arch"), help: "Target architecture, repeatable (sm_80, sm_90a, …).")
    var architectures: [String] = ["sm_80", "sm_90a"]

    func run() throws {
        let compiler = try NVRTCCompiler.load()
        print("NVRTC \(compiler.version.major).\(compiler.version.minor) at \(compiler.libraryPath)")
        var specialisations = [(name: String, options: [String], source: String, sourceName: String)]()
        var seen = Set<[String]>()
        for architecture in architectures {
            for problem in try KernelCatalogue.problems() {
                let plan = try problem.plan()
                for variant in KernelCatalogue.variants(for: architecture) {
                    let options = variant.options(plan, problem.headDim, problem.dtype, architecture)
                    guard seen.insert([variant.sourceName] + options).inserted else { continue }
                    specialisations.append(("\(variant.name) \(problem.name) \(problem.dtype) D\(problem.headDim)", options, variant.source, variant.sourceName))
                }
            }
        }
        var table = TextTable("kernel", "arch", "registers", "shared B", "stack B", "spill B", "result")
        var failures = 0
        for (index, specialisation) in specialisations.enumerated() {
            let architecture = specialisation.options.first { $0.hasPrefix("--gpu-architecture=") }?.split(separator: "=").last.map(String.init) ?? "?"
            progress("[\(index + 1)/\(specialisations.count)] compiling \(specialisation.name) for \(architecture)")
            do {
                let compiled = try compiler.compile(
                    source: specialisation.source, sourceName: specialisation.sourceName,
                    options: specialisation.options + ["--ptxas-options=-v"])
                for usage in compiled.resourceUsage {
                    let bad = usage.spills || usage.stackFrameBytes > 0
                    if bad { failures += 1 }
                    table.append(
                        specialisation.name, usage.architecture, "\(usage.registers)", "\(usage.sharedBytes)",
                        "\(usage.stackFrameBytes)", "\(usage.spillStoreBytes + usage.spillLoadBytes)", bad ? "FAIL" : "ok")
                }
            } catch {
                failures += 1
                table.append(specialisation.name, architecture, "-", "-", "-", "-", "FAIL")
                progress("\(specialisation.name): \(error)")
            }
        }
        print(table.rendered)
        print("\(specialisations.count - failures) passed, \(failures) failed")
        if failures > 0 { throw ExitCode.failure }
    }
}
