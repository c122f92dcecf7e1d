import ArgumentParser
import SlidingTileAttention
import STATooling
import STAGeometry
import STATensors
import STAWindowSearch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find a window per (step, layer, head) from captured q, k, v (training-free, FastVideo's recipe).",
        discussion: """
            Each capture is a .safetensors file with tensors q, k, v of shape [B, H, S, D] (F32, F16, BF16 \
            or F64; S = the layout's sequence length: video tokens in tile order, holes included, then \
            text) and metadata step, layer (integers as strings) and prompt (an id). A directory stands \
            for its *.safetensors files. From PyTorch:

              from safetensors.torch import save_file
              save_file({"q": q.contiguous(), "k": k.contiguous(), "v": v.contiguous()},
                        f"captures/step{step}_layer{layer}_prompt{prompt}.safetensors",
                        metadata={"step": str(step), "layer": str(layer),
                                  "prompt": str(prompt)})

            For every capture of a step >= --full-steps, every candidate window runs on all heads next \
            to full attention (CPU, fp32; or --gpu: the capture read once onto the GPU, bf16 or f16 attention, \
            the errors summed there; --check runs both and compares them); the errors of the video query rows \
            are averaged over prompts. \
            Per head: the smallest mean squared error (default, FastVideo's rule); or, with \
            --max-density, the least total error with a mean key-tile density per (step, layer) at most \
            the budget (solved exactly); or, with --tolerance, the sparsest window whose relative error \
            |sparse - full| / |full| is at most the tolerance (full attention when none is). Steps \
            before --full-steps get the full window. The output is FastVideo's flat JSON \
            {"<step>_<layer>_<head>": [kt, kh, kw], ...}, windows in tiles.
            """)

    @Option(help: "Canvas in tokens, e.g. 30x48x80 (T×H×W).")
    var canvas: String = "30x48x80"

    @Option(help: "Tile in tokens, one size per canvas axis, e.g. 6x8x8.")
    var tile: String = "6x8x8"

    @Option(help: "Text tokens after the video tokens.")
    var text: Int = 0

    @Option(help: "Valid (non-padding) text tokens; default all.")
    var textValid: Int?

    @Argument(help: "Capture files (.safetensors) or directories of them.")
    var captures: [String] = []

    @Option(help: "Where to write the strategy JSON.")
    var output: String

    @Option(help: "Candidate windows, comma-separated (3x3x3,5x3x3,18x24x24t,full); default: every odd or whole-axis size per axis, full excepted.")
    var candidates: String?

    @Option(help: "Steps 0..<N keep full attention and are not measured.")
    var fullSteps: Int = 15

    @Option(help: "Density budget: the mean key-tile density over the heads of each (step, layer) is at most this, in (0, 1].")
    var maxDensity: Double?

    @Option(help: "Error tolerance: per head the sparsest window whose relative L2 error is at most this.")
    var tolerance: Double?

    @Option(help: "CPU threads for attention; default every core.")
    var threads: Int?

    @Flag(help: "Measure on the first CUDA GPU: each capture read once onto the device, bf16 (or f16) attention, errors summed on the device.")
    var gpu = false

    @Flag(
        name: .customLong("check"),
        help: "Measure every capture on the GPU and on the CPU (the reference) and compare errors and choices; exit 1 when they disagree. Implies --gpu; for small captures (the CPU runs every candidate in fp32).")
    var checkAgainstCPU = false

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// Checks the options (called first by `run`; sizes against `STALimits`).
    func check() throws {
        guard !captures.isEmpty else { throw ValidationError("give at least one capture file or directory") }
        if maxDensity != nil, tolerance != nil {
            throw ValidationError("give --max-density or --tolerance, not both")
        }
        if let maxDensity, !(maxDensity > 0 && maxDensity <= 1) {
            throw ValidationError("--max-density is \(maxDensity); it must be in (0, 1]")
        }
        if let tolerance, !(tolerance.isFinite && tolerance >= 0) {
            throw ValidationError("--tolerance is \(tolerance); it must be a number >= 0")
        }
        _ = try STALimits.check(fullSteps, "--full-steps", minimum: 0, maximum: STALimits.maximumSearchSteps)
        if let threads { _ = try STALimits.check(threads, "--threads", minimum: 1, maximum: STALimits.maximumThreads) }
        if gpu, !checkAgainstCPU, threads != nil {
            throw UsageError("search --gpu runs the attention on the GPU and does not use --threads; drop it (or add --check)")
        }
        _ = try STALimits.check(text, "--text", minimum: 0, maximum: STALimits.maximumSequenceLength)
    }

    func run() throws {
        try check()
        // The output is checked before any work: its directory must be writable and it must not be one
        // of the captures (which it would overwrite).
        let files = try ActivationCapture.files(in: captures)
        try OutputFile.validate(output, inputs: files + captures)
        let layout = try STALayout(
            canvas: ShapeSyntax.sizes(canvas, what: "canvas"), tile: ShapeSyntax.sizes(tile, what: "tile"),
            textCount: text, textValid: textValid)
        let windows = try candidates.map { list in
            try list.split(separator: ",").map { try ShapeSyntax.window(String($0), layout: layout) }
        }
        let rule: SelectionRule = maxDensity.map { .densityBudget($0) } ?? tolerance.map { .errorTolerance($0) } ?? .smallestError
        let measurer = gpu || checkAgainstCPU ? try gpuMeasurer() : nil
        var search = try WindowSearch(
            layout: layout, candidates: windows, fullSteps: fullSteps, threads: threads, measurer: measurer)
        // With --check, the CPU path measures every capture too and is the reference.
        var reference = checkAgainstCPU ? try WindowSearch(layout: layout, candidates: windows, fullSteps: fullSteps, threads: threads) : nil

        // Every header first (cheap), so that a bad capture stops the run before any measuring.
        let opened = try files.map { path throws(WindowSearchError) in try ActivationCapture(path: path, layout: layout) }
        var measured = 0
        let started = MonotonicClock.now
        for (index, capture) in opened.enumerated() {
            let path = capture.path
            let start = MonotonicClock.now
            try search.add(capture, prefetching: index + 1 < opened.count ? opened[index + 1] : nil)
            if capture.step >= fullSteps {
                measured += 1
                let seconds = MonotonicClock.now - start
                var line = "[\(index + 1)/\(files.count)] \(path): step \(capture.step), layer \(capture.layer), "
                    + "prompt \(capture.prompt), \(capture.heads) heads, \(search.candidates.count) candidates, \(fixed(seconds, 2)) s"
                if let measurer {
                    let (transfer, device) = measurer.lastTimings
                    line += " (read and upload \(fixed(transfer, 2)) s, device \(fixed(device, 2)) s)"
                }
                progress(line)
            }
            if reference != nil {
                let start = MonotonicClock.now
                try reference!.add(capture)
                if capture.step >= fullSteps { progress("  CPU reference: \(fixed(MonotonicClock.now - start, 2)) s") }
            }
        }
        if measured > 0 {
            let perCapture = (MonotonicClock.now - started) / Double(measured)
            progress("measured \(measured) captures in \(fixed(perCapture, 2)) s each\(checkAgainstCPU ? " (GPU and CPU)" : "")")
        }
        let checkPassed = try reference.map { try report(SearchAgreement(reference: $0, search: search, rule: rule)) } ?? true
        let result = try search.result(rule)
        try OutputFile.write(text: result.strategy.jsonText, to: output)

        let summaries = result.layerSummaries
        if json {
            let layers: [JSONValue] = summaries.map { summary in
                .object([
                    ("layer", .integer(summary.layer)), ("steps", .integer(summary.stepCount)),
                    ("heads", .integer(summary.choiceCount)), ("mean_density", .real(summary.meanDensity)),
                    ("mean_mse", .real(summary.meanSquaredError)), ("mean_l1", .real(summary.meanAbsoluteError)),
                    ("mean_relative_error", .real(summary.meanRelativeError)),
                    ("max_relative_error", .real(summary.maximumRelativeError)),
                ])
            }
            print(JSONValue.object([
                ("layout", .string(layout.description)), ("rule", .string(rule.description)),
                ("captures", .integer(files.count)), ("measured", .integer(measured)),
                ("candidates", .array(search.candidates.map { .string($0.description) })),
                ("full_steps", .integer(fullSteps)), ("output", .string(output)),
                ("entries", .integer(result.strategy.count)), ("overall_density", .real(result.overallDensity)),
                ("layers", .array(layers)),
            ]).serialized)
            if !checkPassed { throw ExitCode.failure }
            return
        }
        var table = TextTable("layer", "steps", "head choices", "mean density", "mean MSE", "mean L1", "mean rel err", "max rel err")
        for summary in summaries {
            table.append(
                "\(summary.layer)", "\(summary.stepCount)", "\(summary.choiceCount)", fixed(summary.meanDensity, 4),
                scientific(summary.meanSquaredError), scientific(summary.meanAbsoluteError),
                scientific(summary.meanRelativeError), scientific(summary.maximumRelativeError))
        }
        if !result.choices.isEmpty {
            let all = result.choices
            let count = Double(all.count)
            table.append(
                "all", "\(Set(all.map(\.step)).count)", "\(all.count)", fixed(all.reduce(0) { $0 + $1.density } / count, 4),
                scientific(all.reduce(0) { $0 + $1.error.meanSquaredError } / count),
                scientific(all.reduce(0) { $0 + $1.error.meanAbsoluteError } / count),
                scientific(all.reduce(0) { $0 + $1.error.relativeError } / count),
                scientific(all.map(\.error.relativeError).max() ?? 0))
        }
        print("search over \(layout): \(files.count) captures, \(measured) measured, \(search.candidates.count) candidates, \(rule)")
        print(table.rendered)
        print("wrote \(output): \(result.strategy.count) entries; steps 0..<\(fullSteps) full; "
            + "mean density with the full steps \(fixed(result.overallDensity, 4))")
        if !checkPassed { throw ExitCode.failure }
    }

    /// The GPU measurer on the first CUDA device (a clear error without a driver, a device or NVRTC).
    private func gpuMeasurer() throws -> CUDAWindowMeasurer {
        let backend = try CUDABackend(ordinal: 0)
        progress("search on \(AttentionBackend.cuda(backend))")
        return try CUDAWindowMeasurer(backend: backend)
    }

    /// Prints the --check comparison on standard error; returns whether it passed.
    private func report(_ agreement: SearchAgreement) -> Bool {
        progress("check: GPU against the CPU reference over \(agreement.comparedEntries) (step, layer, candidate, head) "
            + "entries; tolerance \(agreement.tolerance) relative + \(agreement.floor) of ‖full‖")
        if let problem = agreement.structureProblem { progress("check: FAILED, \(problem)") }
        progress("check: worst error ratio \(fixed(agreement.worstRatio, 3)) (≤ 1 passes) at \(agreement.worstEntry)")
        for tie in agreement.nearTies { progress("check: near tie (both windows equally good) at \(tie)") }
        for mismatch in agreement.mismatches { progress("check: MISMATCHED choice at \(mismatch)") }
        progress("check: \(agreement.passed ? "passed" : "FAILED")")
        return agreement.passed
    }
}
