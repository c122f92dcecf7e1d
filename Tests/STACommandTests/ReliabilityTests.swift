import Foundation
import STAGeometry
import STATensors
import Testing

@testable import STACommand

/// Exit statuses, limits, output files and option checks of the `sta` tool.
@Suite struct ReliabilityTests {
    /// A fresh directory under the system's temporary directory.
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "sta-command-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test(arguments: [
        (["plan", "--text", "9223372036854775807"], "134217728"),
        (["plan", "--canvas", "100000x100000x100000"], "134217728"),
        (["plan", "--heads", "1000000000000"], "65535"),
        (["plan", "--window", "3x3x3*1000000000000"], "65535"),
        (["plan", "--batch", "100000"], "65535"),
        (["plan", "--head-dim", "99999999"], "65536"),
        (["plan", "--canvas", "512x512x512", "--tile", "1x1x1", "--heads", "65535", "--head-dim", "65536"], "tensor elements"),
        (["render", "--max-pixels", "100000"], "8192"),
        (["search", "x.safetensors", "--output", "y.json", "--full-steps", "1000000000000"], "100000"),
        (["bench", "--cpu", "--threads", "1000000000000"], "4096"),
        (["search", "x.safetensors", "--output", "y.json", "--threads", "99999"], "4096"),
        (["bench", "--repetitions", "10000000"], "1000000"),
        (["bench", "--pause", "100000"], "60000"),
    ])
    func sizesAboveTheLimitsAreUsageErrorsNamingTheLimit(_ arguments: [String], _ limit: String) {
        let outcome = STA.outcome(arguments)
        #expect(outcome.status == .usage, "\(arguments): \(outcome)")
        #expect(outcome.message?.contains(limit) == true, "\(arguments): \(outcome.message ?? "")")
        #expect(outcome.message?.contains("limit") == true, "\(arguments): \(outcome.message ?? "")")
    }

    @Test func extremeBlockSizesEndWithAnAnswerOrAClearError() {
        let huge = STA.outcome(["analyze", "--canvas", "8x8", "--tile", "4x4", "--window", "1x1", "--query-block", "9223372036854775807"])
        #expect(huge.status == .success, "\(huge)")
        let thin = STA.outcome(["analyze", "--canvas", "2097152", "--tile", "1", "--window", "1", "--query-block", "1", "--key-block", "2097152"])
        #expect(thin.status == .usage && thin.message?.contains("per side") == true, "\(thin)")
    }

    @Test func negativeNumbersAreValuesNotMissingValues() throws {
        #expect(try STA.normalized(["plan", "--text", "-5", "--json"]) == ["plan", "--text=-5", "--json"])
        #expect(try STA.normalized(["search", "--tolerance", "-0.5"]) == ["search", "--tolerance=-0.5"])
        // A flag followed by a negative number does not take it; "--" ends option processing.
        #expect(try STA.normalized(["plan", "--json", "-5"]) == ["plan", "--json", "-5"])
        #expect(try STA.normalized(["x", "--", "--a", "-1"]) == ["x", "--", "--a", "-1"])
        for (arguments, expected) in [
            (["plan", "--heads", "-3"], "--heads is -3; it must be at least 1"),
            (["plan", "--text", "-5"], "--text is -5; it must be 0 or more"),
            (["render", "--max-pixels", "-1"], "--max-pixels is -1; it must be at least 1"),
            (["bench", "--cpu", "--threads", "-2"], "--threads is -2; it must be at least 1"),
            (["bench", "--pause", "-1"], "--pause is -1; it must be 0 or more"),
        ] {
            let outcome = STA.outcome(arguments)
            #expect(outcome.status == .usage)
            #expect(outcome.message == expected, "\(arguments): \(outcome.message ?? "")")
        }
    }

    @Test(arguments: [
        (["bench", "--cpu", "--canvas", "junk"], "--canvas"),
        (["bench", "--cpu", "--suite", "hunyuan", "--kernel", "hopper"], "--suite, --kernel"),
        (["bench", "--cpu", "--backward"], "--backward"),
        (["bench", "--cpu", "--pause", "5"], "--pause"),
        (["bench", "--quick"], "--quick"),
        (["verify", "--cpu", "--kernel", "hopper"], "--kernel"),
        (["plan", "--suite", "wan", "--canvas", "8x8"], "--canvas"),
        (["search", "x.safetensors", "--output", "y.json", "--gpu", "--threads", "2"], "--threads"),
        (["verify", "--json", "out.json"], "standard output"),
        (["verify", "--cpu", "--random", "3", "--canvas", "8x8"], "--canvas"),
        (["verify", "--cpu", "--random", "0"], "--random"),
        (["kernels", "--seed", "3"], "--seed"),
    ])
    func optionsTheModeIgnoresAreRejected(_ arguments: [String], _ named: String) {
        let outcome = STA.outcome(arguments)
        #expect(outcome.status == .usage, "\(arguments): \(outcome)")
        #expect(outcome.message?.contains(named) == true, "\(arguments): \(outcome.message ?? "")")
    }

    /// `verify --only` runs the cases whose name holds the text, and a text no case holds is a usage error.
    @Test func verifyOnlyRunsTheNamedCases() {
        let none = STA.outcome(["verify", "--cpu", "--only", "no such case"])
        #expect(none.status == .usage)
        #expect(none.message?.contains("'no such case'") == true, "\(none.message ?? "")")
        #expect(STA.outcome(["verify", "--cpu", "--only", "1D 1000", "--json"]).status == .success)
    }

    /// `verify --random` checks the drawn problems on the CPU, every row referenced, and passes.
    @Test func verifyRandomChecksDrawnProblems() {
        #expect(STA.outcome(["verify", "--cpu", "--random", "3", "--seed", "5"]).status == .success)
        #expect(STA.outcome(["verify", "--cpu", "--backward", "--random", "2", "--seed", "6", "--json"]).status == .success)
    }

    @Test func fileSystemErrorsHaveTheirOwnStatusAndNoUsageText() throws {
        let missingDirectory = STA.outcome(["render", "--canvas", "8x8", "--tile", "4x4", "--window", "1x1", "--output", "/no/such/dir/a.png"])
        #expect(missingDirectory.status == .cannotCreate)
        #expect(missingDirectory.message?.contains("does not exist") == true)
        #expect(missingDirectory.message?.contains("Usage") == false)
        // Checked before any compile (and before NVRTC is needed).
        let missingPTXDirectory = STA.outcome(["kernels", "--arch", "sm_90a", "--ptx", "/no/such/dir"])
        #expect(missingPTXDirectory.status == .cannotCreate, "\(missingPTXDirectory)")
        #expect(missingPTXDirectory.message?.contains("'/no/such/dir' does not exist") == true, "\(missingPTXDirectory)")
        let missingInput = STA.outcome(["search", "/no/such/capture.safetensors", "--output", NSTemporaryDirectory() + "s.json"])
        #expect(missingInput.status == .noInput, "\(missingInput)")
        #expect(missingInput.message?.contains("Usage") == false)
        // Every status is distinct.
        #expect(Set(ExitStatus.allCases.map(\.rawValue)).count == ExitStatus.allCases.count)
    }

    @Test func searchRefusesToOverwriteACaptureBeforeMeasuring() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let layout = try STALayout(canvas: [4, 4], tile: [2, 2])
        let count = layout.sequenceLength * 2
        let tensor = try HostTensor(shape: [1, 1, layout.sequenceLength, 2], values: (0..<count).map { Float($0 % 7) / 7 })
        let capture = directory + "/step20_layer0_prompt0.safetensors"
        try SafetensorsFile.write(
            ["q": tensor, "k": tensor, "v": tensor], metadata: ["step": "20", "layer": "0", "prompt": "a"], to: capture)
        let before = FileManager.default.contents(atPath: capture)
        for output in [capture, directory + "/./step20_layer0_prompt0.safetensors"] {
            let outcome = STA.outcome(["search", "--canvas", "4x4", "--tile", "2x2", directory, "--output", output])
            #expect(outcome.status == .cannotCreate, "\(outcome)")
            #expect(outcome.message?.contains("refusing to overwrite an input") == true)
            #expect(FileManager.default.contents(atPath: capture) == before)
        }
        // A fresh output works and is written whole.
        let output = directory + "/strategy.json"
        let outcome = STA.outcome(["search", "--canvas", "4x4", "--tile", "2x2", "--full-steps", "0", capture, "--output", output])
        #expect(outcome.status == .success, "\(outcome)")
        let text = try #require(FileManager.default.contents(atPath: output)).map { Character(UnicodeScalar($0)) }
        #expect(String(text).hasPrefix("{") && String(text).hasSuffix("}\n"))
    }

    @Test func everySubcommandWithAReportTakesTheJSONFlag() throws {
        // `--json` is a flag (no value) on every subcommand that prints a report.
        for arguments in [["plan"], ["analyze"], ["verify"], ["bench"], ["search", "x", "--output", "y"]] {
            let command = try STA.parseAsRoot(arguments + ["--json"])
            let mirror = Mirror(reflecting: command)
            let flag = mirror.children.first { $0.label == "_json" }?.value
            #expect(flag.map { "\($0)".contains("true") } == true, "\(arguments): \(String(describing: flag))")
        }
        // A file name after it is refused with the form to use instead.
        #expect(STA.outcome(["bench", "--json", "bench.json"]).message?.contains("--json >") == true)
    }

    /// Random and extreme shape, window and size options: every case parses to problems (whose plans
    /// build when small) or ends in a usage error with a message, never a trap.
    @Test func fuzzTheShapeAndWindowOptions() throws {
        var state: UInt64 = 0x5EED_C11
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }
        let numbers = [
            "0", "1", "2", "3", "5", "7", "8", "16", "30", "48", "-1", "-0", "+3", "00", "1e3", "0x10", "",
            "65535", "65536", "134217728", "134217729", "2147483648", "9223372036854775807", "9223372036854775808",
            "-9223372036854775808", "99999999999999999999", " 3", "３",
        ]
        func sizes() -> String {
            let rank = Int(next() % 5)
            return (0..<rank).map { _ in next() % 3 == 0 ? pick(numbers) : String(next() % 40 + 1) }.joined(separator: pick(["x", "x", "x", "X", "*", ""]))
        }
        func window() -> String {
            switch next() % 6 {
            case 0: return "full"
            case 1: return sizes() + "t"
            case 2: return (0..<Int(next() % 4)).map { _ in sizes() + (next() % 2 == 0 ? "*" + pick(numbers) : "") }.joined(separator: ",")
            default: return sizes()
            }
        }
        var succeeded = 0
        var rejected = 0
        func check(_ options: ProblemOptions, _ shown: [String]) {
            do {
                for problem in try options.problems() {
                    #expect(problem.layout.sequenceLength <= STALimits.maximumSequenceLength)
                    #expect(problem.heads >= 1 && problem.heads <= STALimits.maximumHeads)
                    // Building large plans is correct but slow; the plan builder has its own fuzz test.
                    if problem.heads <= 64, problem.layout.tileCount <= 4096,
                        Set(problem.headWindows).reduce(0, { $0 + $1.tileCount * problem.layout.tileCount }) <= 1 << 16
                    {
                        _ = try problem.plan()
                    }
                }
                succeeded += 1
            } catch {
                #expect(ExitStatus.of(error) == .usage, "\(shown): \(error)")
                #expect(!"\(error)".isEmpty)
                rejected += 1
            }
        }
        // Through the option values (fast): a few thousand cases.
        let base = try ProblemOptions.parse([])
        for _ in 0..<3000 {
            var options = base
            if next() % 4 != 0 { options.canvas = next() % 2 == 0 ? sizes() : pick(["8x8x8", "30x48x80", "4096", "16x16"]) }
            if next() % 4 != 0 { options.tile = next() % 2 == 0 ? sizes() : pick(["2x2x2", "6x8x8", "64", "4x4"]) }
            if next() % 3 != 0 { options.window = window() }
            func integer() -> Int? { next() % 4 == 0 ? Int(pick(numbers)) ?? Int(truncatingIfNeeded: next()) : nil }
            options.text = integer()
            options.textValid = integer()
            options.heads = integer()
            options.batch = integer()
            options.headDim = integer()
            check(options, [options.canvas ?? "-", options.tile ?? "-", options.window ?? "-"])
        }
        // Through the whole command line (parsing is slower): a few hundred cases.
        for _ in 0..<200 {
            var arguments = ["plan"]
            if next() % 4 != 0 { arguments += ["--canvas", sizes()] }
            if next() % 4 != 0 { arguments += ["--tile", sizes()] }
            if next() % 3 != 0 { arguments += ["--window", window()] }
            for option in ["--text", "--text-valid", "--heads", "--batch", "--head-dim"] where next() % 4 == 0 {
                arguments += [option, pick(numbers)]
            }
            do {
                guard case let plan as Plan = try STA.parseAsRoot(STA.normalized(arguments)) else {
                    Issue.record("\(arguments) did not parse as plan")
                    continue
                }
                check(plan.problem, arguments)
            } catch {
                #expect(ExitStatus.of(error) == .usage, "\(arguments): \(error)")
                #expect(!STA.message(for: error).isEmpty)
                rejected += 1
            }
        }
        #expect(succeeded > 50 && rejected > 50, "succeeded \(succeeded), rejected \(rejected)")
    }
}
