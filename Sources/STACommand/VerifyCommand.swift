import ArgumentParser
import STATensors
import SlidingTileAttention
import STATooling

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every kernel against the float64 reference on fresh random inputs; non-zero exit on any failure.",
        discussion: """
            Outputs are poisoned before each run. Tolerances (spec §4): bf16 1e-2, fp16 3e-3, f32 1e-4 relative; \
            log-sum-exp 1e-3. Without --suite or --canvas the matrix of small cases runs, every row referenced. \
            With them (e.g. --suite hunyuan, the layouts the benchmarks time), every kernel runs the whole \
            problem and is compared with the reference on sampled rows of every (batch, head) — interior, \
            border and hole tiles, text and padding text — and every row that attends nothing must be 0 / −∞. \
            With --backward there, dq is referenced on the sampled rows as queries and dk, dv on them as keys \
            (every query that attends the key), gradients poisoned first: rows of holes and padding text must \
            be exactly 0 in all three, every other row finite. \
            The matrix ends with the cases of large finite inputs (scores and P·V sums past the fp32 range; \
            "large finite inputs" rows) and, on a GPU, per-row text lengths and the NaN contract.
            """)

    @OptionGroup var problem: ProblemOptions

    @Flag(help: "Verify the CPU backend instead of the GPU.")
    var cpu = false

    @Flag(help: "Verify the backward pass (dq, dk, dv) instead of the forward: the largest relative error of the three is shown.")
    var backward = false

    @Option(help: "Seed for the random inputs (default: from the clock, printed).")
    var seed: UInt64?

    @Flag(help: "Print the results as JSON on standard output instead of the table.")
    var json = false

    @Option(help: "Only cases whose name contains this text (e.g. \"large finite\"), like bench's --only.")
    var only: String?

    @Option(help: "GPU kernels to check: all (every kernel this GPU runs), automatic, portable or hopper. Default all.")
    var kernel: String?

    @Option(help: ArgumentHelp(
        "Check N problems drawn from the seed instead of the matrix (1...1000), every row referenced.",
        discussion: "1D, 2D and 3D layouts with holes, text (padded or not) and per-head windows, batch 1 or 2, some with another softmax scale; each case's name is the options that describe it. On a GPU, each drawn problem with text runs again as a batch of two rows with their own drawn valid text lengths."))
    var random: Int?

    func run() throws {
        var backends: [AttentionBackend] = [.cpu(threads: nil)]
        if cpu {
            try rejectIgnored(kernel.map { _ in ["--kernel"] } ?? [], by: "verify --cpu")
        } else {
            let probe = try CUDABackend(ordinal: 0)
            let choices = try kernelChoices(kernel ?? "all", direction: backward ? .backward : .forward, on: probe)
            backends = try choices.map { .cuda(try CUDABackend(ordinal: 0, kernel: KernelPreference(name: $0.rawValue))) }
        }
        let sampled = problem.namesProblem
        let seed = self.seed ?? UInt64(MonotonicClock.now * 1e6)
        let cases: [AttentionProblem]
        if let random {
            try rejectIgnored(problem.givenOptions, by: "verify --random (it draws every shape)")
            _ = try STALimits.check(random, "--random", minimum: 1, maximum: 1000)
            cases = try cpu
                ? Verification.randomCases(count: random, seed: seed, dtypes: [.bfloat16, .float16, .float32], headDims: [16, 40, 64, 128])
                : Verification.randomCases(count: random, seed: seed)
        } else {
            cases = sampled ? try problem.problems() : try Verification.gpuCases()
        }
        // The matrix's own cases follow it: large finite inputs, the NaN contract, per-row text lengths.
        let matrix = !sampled && random == nil
        let heading = "verify \(backward ? "backward" : "forward") on \(backends.map(\.description).joined(separator: "; ")), seed \(seed)"
        if json { progress(heading) } else { print(heading) }
        var table = TextTable("backend", "case", "dtype", "D", "S", "rel err", "tolerance", "lse err", "empty rows", "result")
        var records = [JSONValue]()
        var failures = 0
        /// One row of the table and one JSON record; `textValid` for the per-row text cases.
        func report(_ outcome: Verification.Outcome, backend backendName: String, textValid: [Int]? = nil) {
            if !outcome.passed { failures += 1 }
            progress("  \(backendName) \(outcome.name) \(outcome.dtype) D\(outcome.headDim): \(outcome.passed ? "pass" : "FAIL")")
            if let detail = outcome.detail { progress("    \(detail)") }
            table.append(
                backendName, outcome.name, "\(outcome.dtype)", "\(outcome.headDim)", "\(outcome.sequenceLength)",
                scientific(outcome.outputError), scientific(outcome.tolerance), scientific(outcome.lseError),
                outcome.badEmptyRows == 0 ? "ok" : "\(outcome.badEmptyRows) bad", outcome.passed ? "PASS" : "FAIL")
            var fields: [(String, JSONValue)] = [
                ("backend", .string(backendName)), ("case", .string(outcome.name)), ("dtype", .string("\(outcome.dtype)")),
                ("head_dim", .integer(outcome.headDim)), ("sequence_length", .integer(outcome.sequenceLength)),
            ]
            if let textValid { fields.append(("text_valid", .array(textValid.map { .integer($0) }))) }
            fields += [
                ("rel_err", .real(outcome.outputError)), ("lse_err", .real(outcome.lseError)),
                ("bad_empty_rows", .integer(outcome.badEmptyRows)), ("passed", .bool(outcome.passed)),
            ]
            records.append(.object(fields))
        }
        /// One row and record of a NaN-contract case (no errors, only rows that break the contract).
        func reportNaN(_ outcome: Verification.Outcome, backend backendName: String) {
            if !outcome.passed { failures += 1 }
            progress("  \(backendName) \(outcome.name) \(outcome.dtype) D\(outcome.headDim): \(outcome.passed ? "pass" : "FAIL")")
            table.append(
                backendName, outcome.name, "\(outcome.dtype)", "\(outcome.headDim)", "\(outcome.sequenceLength)",
                "-", "-", "-", outcome.badEmptyRows == 0 ? "ok" : "\(outcome.badEmptyRows) bad rows",
                outcome.passed ? "PASS" : "FAIL")
            records.append(.object([
                ("backend", .string(backendName)), ("case", .string(outcome.name)),
                ("dtype", .string("\(outcome.dtype)")), ("head_dim", .integer(outcome.headDim)),
                ("bad_rows", .integer(outcome.badEmptyRows)), ("passed", .bool(outcome.passed)),
            ]))
        }
        /// Whether a case runs (--only); the seeds stay those of the whole matrix.
        func keep(_ name: String) -> Bool { only.map { name.contains($0) } ?? true }
        for backend in backends {
            let backendName = backend.shortName
            for (index, testCase) in cases.enumerated() where keep(testCase.name) {
                let seed = seed &+ UInt64(index)
                let check: Verification.Check =
                    sampled ? (backward ? .sampledBackward : .sampledRows) : (backward ? .backward : .forward)
                report(try Verification.run(testCase, check, on: backend, seed: seed), backend: backendName)
            }
            // Scores and P·V sums past the fp32 range: the float64 reference's numbers (the GPU backward
            // marks the gradients of such rows NaN instead).
            if matrix {
                for (index, testCase) in try Verification.largeInputCases().enumerated() where keep(testCase.name) {
                    let outcome = try Verification.runLargeInputs(
                        testCase, backward: backward, on: backend, seed: seed &+ UInt64(3000 + index))
                    report(outcome, backend: backendName)
                }
            }
            // NaN in q and dO reaches exactly the gradient rows it touches, as NaN (never zeros).
            if matrix && backward {
                for (index, testCase) in try Verification.nanContractCases().enumerated() where keep(testCase.name) {
                    let outcome = try Verification.runNaNContractBackward(
                        testCase, on: backend, seed: seed &+ UInt64(4000 + index))
                    reportNaN(outcome, backend: backendName)
                }
            }
            // Batches whose rows have their own valid text lengths (a device array; CUDA kernels only): the
            // matrix's, or with --random the drawn problems with text, two rows of drawn lengths each.
            if case .cuda(let gpu) = backend, random != nil {
                for (index, testCase) in Verification.randomTextRowsCases(cases, seed: seed).enumerated()
                where keep(testCase.name) {
                    let outcome = try Verification.runTextRows(
                        testCase, backward: backward, on: gpu, seed: seed &+ UInt64(1000 + index))
                    report(outcome, backend: backendName, textValid: testCase.textValid)
                }
            }
            if case .cuda(let gpu) = backend, matrix {
                for (index, testCase) in try Verification.textRowsCases().enumerated() where keep(testCase.name) {
                    let outcome = try Verification.runTextRows(
                        testCase, backward: backward, on: gpu, seed: seed &+ UInt64(1000 + index))
                    report(outcome, backend: backendName, textValid: testCase.textValid)
                }
                // NaN and ±inf in q, k reach exactly the rows that read them, as NaN (forward kernels).
                if !backward {
                    for (index, testCase) in try Verification.nanContractCases().enumerated() where keep(testCase.name) {
                        let outcome = try Verification.runNaNContract(testCase, on: gpu, seed: seed &+ UInt64(2000 + index))
                        reportNaN(outcome, backend: backendName)
                    }
                }
            }
        }
        if records.isEmpty, let only { throw ValidationError("no case of this verify run has a name containing '\(only)'") }
        let total = records.count
        if json {
            print(JSONValue.object([
                ("backends", .array(backends.map { .string($0.description) })), ("seed", .string(String(seed))),
                ("passed", .integer(total - failures)), ("failed", .integer(failures)), ("cases", .array(records)),
            ]).serialized)
        } else {
            print(table.rendered)
            print("\(total - failures) passed, \(failures) failed")
        }
        if failures > 0 { throw ExitCode.failure }
    }
}
