import ArgumentParser
import CUDADriver
import SlidingTileAttention
import STATooling
import STACUDAKernels
import STATensors

struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile every kernel specialisation the suites and the verify matrix use; report registers and spills.",
        discussion: "Needs NVRTC only (no GPU). Fails on any compile error, local-memory spill, stack frame or serialised wgmma.")

    @Option(name: .customLong("arch"), help: "Target architecture, repeatable (sm_80, sm_90a, …).")
    var architectures: [String] = ["sm_80", "sm_90a"]

    @Option(name: .customLong("ptx"), help: "Write each specialisation's PTX (virtual target compute_XX) to this directory instead of compiling CUBINs; compare two such directories to check that a source change leaves the code alone.")
    var ptxDirectory: String?

    @Option(help: "Compile the specialisations of N problems of `verify --random` (1...1000, drawn from --seed) instead of the suites' and the matrix's.")
    var random: Int?

    @Option(help: "Seed of the --random problems (default: from the clock, printed).")
    var seed: UInt64?

    func run() throws {
        // A PTX directory that cannot take the files fails now, not after minutes of compiling.
        if let ptxDirectory { try OutputFile.validate(ptxDirectory + "/kernel.ptx") }
        let compiler = try NVRTCCompiler.load()
        print("NVRTC \(compiler.version.major).\(compiler.version.minor) at \(compiler.libraryPath)")
        // Each specialisation with the option sets its launcher may try, best first.
        var specialisations = [(name: String, candidates: [[String]], source: KernelSource)]()
        var seen = Set<[String]>()
        var problems = try KernelCatalogue.problems()
        if let random {
            _ = try STALimits.check(random, "--random", minimum: 1, maximum: 1000)
            let seed = self.seed ?? UInt64(MonotonicClock.now * 1e6)
            print("random problems: \(random), seed \(seed)")
            problems = try Verification.randomCases(count: random, seed: seed)
        } else {
            try rejectIgnored(seed.map { _ in ["--seed"] } ?? [], by: "kernels without --random")
        }
        for architecture in architectures {
            for problem in problems {
                let plan = try problem.plan()
                for variant in KernelCatalogue.variants(for: architecture) {
                    let candidates = variant.candidates(plan, problem.headDim, problem.dtype, architecture)
                    guard seen.insert([variant.sourceName] + candidates.joined()).inserted else { continue }
                    specialisations.append(("\(variant.name) \(problem.name) \(problem.dtype) D\(problem.headDim)", candidates, variant.kernelSource))
                }
            }
        }
        if let ptxDirectory {
            try writePTX(of: specialisations.map { ($0.name, $0.candidates[0], $0.source) }, compiler: compiler, to: ptxDirectory)
            return
        }
        var table = TextTable("kernel", "arch", "shape", "registers", "shared B", "stack B", "spill B", "result")
        var failures = 0
        for (index, specialisation) in specialisations.enumerated() {
            let architecture = specialisation.candidates[0].first { $0.hasPrefix("--gpu-architecture=") }?.split(separator: "=").last.map(String.init) ?? "?"
            progress("[\(index + 1)/\(specialisations.count)] compiling \(specialisation.name) for \(architecture)")
            // Like the launcher: the first candidate whose compile neither spills nor has a stack frame,
            // else the last one (which then fails the check). A serialised wgmma fails it too.
            for (choice, options) in specialisation.candidates.enumerated() {
                do {
                    let compiled = try specialisation.source.compile(with: compiler, options: options + ["--ptxas-options=-v"])
                    let bad = compiled.resourceUsage.contains { $0.spills || $0.stackFrameBytes > 0 }
                    if bad && choice < specialisation.candidates.count - 1 { continue }
                    for usage in compiled.resourceUsage {
                        let bad = usage.spills || usage.stackFrameBytes > 0 || usage.serializesWGMMA
                        if bad { failures += 1 }
                        table.append(
                            specialisation.name, usage.architecture, Self.shapeLabel(options, choice: choice),
                            "\(usage.registers)", "\(usage.sharedBytes)", "\(usage.stackFrameBytes)",
                            "\(usage.spillStoreBytes + usage.spillLoadBytes)",
                            usage.serializesWGMMA ? "FAIL (serialised wgmma)" : bad ? "FAIL" : "ok")
                    }
                } catch {
                    failures += 1
                    table.append(specialisation.name, architecture, Self.shapeLabel(options, choice: choice), "-", "-", "-", "-", "FAIL")
                    progress("\(specialisation.name): \(error)")
                }
                break
            }
        }
        print(table.rendered)
        print("\(specialisations.count - failures) passed, \(failures) failed")
        if failures > 0 { throw ExitCode.failure }
    }

    /// "rows×keys/step" of a portable forward shape (from its -D options), "-" for other kernels; with
    /// "#n" when it is the n-th candidate (a fallback).
    static func shapeLabel(_ options: [String], choice: Int) -> String {
        func value(_ name: String) -> String? {
            options.first { $0.hasPrefix("-D\(name)=") }.map { String($0.dropFirst(name.count + 3)) }
        }
        let fallback = choice > 0 ? "#\(choice + 1)" : nil
        guard let rows = value("STA_ROWS_PER_WARP"), let keys = value("STA_BLOCK_N"), let step = value("STA_STEP_N") else {
            return fallback ?? "-"
        }
        return "\(rows)×\(keys)/\(step)" + (fallback.map { " " + $0 } ?? "")
    }

    /// Compiles every specialisation to PTX for the virtual architecture of its target (sm_90a →
    /// compute_90a) and writes `<kernel> <problem> <dtype> D<dim> <arch>.ptx` files (spaces as `_`).
    func writePTX(
        of specialisations: [(name: String, options: [String], source: KernelSource)],
        compiler: NVRTCCompiler, to directory: String
    ) throws {
        var written = Set<String>()
        var failures = 0
        for specialisation in specialisations {
            let prefix = "--gpu-architecture="
            let architecture = specialisation.options.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } ?? "?"
            let options = specialisation.options.map { $0.hasPrefix(prefix + "sm_") ? prefix + "compute_" + $0.dropFirst(prefix.count + 3) : $0 }
            var base = "\(specialisation.name) \(architecture)".map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
                .reduce(into: "") { $0.append($1) }
            while written.contains(base) { base += "+" }
            written.insert(base)
            do {
                let compiled = try specialisation.source.compile(with: compiler, options: options)
                try OutputFile.write(text: String(decoding: compiled.image.prefix { $0 != 0 }, as: UTF8.self), to: directory + "/" + base + ".ptx")
            } catch {
                failures += 1
                print("\(specialisation.name) \(architecture): \(error)")
            }
        }
        print("\(written.count - failures) PTX files written to \(directory), \(failures) failed")
        if failures > 0 { throw ExitCode.failure }
    }
}
