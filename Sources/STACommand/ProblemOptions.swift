import ArgumentParser
import SlidingTileAttention
import STATooling
import STAGeometry
import STATensors

/// The options that describe an attention problem: a named suite, or a canvas, tile, text and windows.
///
/// Every option is optional so that a command can tell which ones were given: a suite fixes every shape,
/// so shape options next to `--suite` are an error rather than silently ignored, and modes that use no
/// problem (`bench --cpu`) reject them all. Sizes are checked against `STALimits` before anything is
/// built.
struct ProblemOptions: ParsableArguments {
    @Option(help: "A benchmark suite of the specification: hunyuan, wan or image (fixes every shape option).")
    var suite: String?

    @Option(help: "Canvas in tokens, e.g. 30x48x80 (T×H×W), 128x128 (H×W) or 4096 (L). Default 30x48x80.")
    var canvas: String?

    @Option(help: "Tile in tokens, one size per canvas axis. Default 6x8x8.")
    var tile: String?

    @Option(help: "Window in tiles (3x3x3), tokens (18x24x24t) or 'full'; or a per-head list. Default 3x3x3.")
    var window: String?

    @Option(help: "Text tokens after the video tokens. Default 0.")
    var text: Int?

    @Option(help: "Valid (non-padding) text tokens; default all.")
    var textValid: Int?

    @Option(help: "Attention heads, 1...\(STALimits.maximumHeads). Default 24.")
    var heads: Int?

    @Option(help: "Batch size, 1...\(STALimits.maximumBatch). Default 1.")
    var batch: Int?

    @Option(help: "Head dimension D, 1...\(STALimits.maximumHeadDim). Default 128.")
    var headDim: Int?

    @Option(help: "Storage type: bf16, f16 or f32. Default bf16.")
    var dtype: String?

    /// The shape options given on the command line, by option name.
    var givenShapeOptions: [String] {
        let values: [(String, Any?)] = [
            ("--canvas", canvas), ("--tile", tile), ("--window", window), ("--text", text),
            ("--text-valid", textValid), ("--heads", heads), ("--batch", batch), ("--head-dim", headDim),
            ("--dtype", dtype),
        ]
        return values.compactMap { $0.1 == nil ? nil : $0.0 }
    }

    /// Every option given on the command line, by name.
    var givenOptions: [String] { (suite == nil ? [] : ["--suite"]) + givenShapeOptions }

    /// The suite's problems, or the one problem the shape options describe.
    /// Whether the command line names a problem (`--suite` or `--canvas`) rather than leaving every shape
    /// at its default.
    var namesProblem: Bool { suite != nil || canvas != nil }

    func problems() throws -> [AttentionProblem] {
        if let suite {
            guard let named = BenchmarkSuite(rawValue: suite.lowercased()) else {
                throw ValidationError("unknown suite '\(suite)'; suites are \(BenchmarkSuite.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            try rejectIgnored(givenShapeOptions, by: "--suite \(suite) (it fixes every shape)")
            return try named.problems()
        }
        let dtype = self.dtype ?? "bf16"
        guard let storage = DType(name: dtype), [.bfloat16, .float16, .float32].contains(storage) else {
            throw ValidationError("dtype '\(dtype)' is not supported; use bf16, f16 or f32")
        }
        let heads = try STALimits.check(self.heads ?? 24, "--heads", minimum: 1, maximum: STALimits.maximumHeads)
        let batch = try STALimits.check(self.batch ?? 1, "--batch", minimum: 1, maximum: STALimits.maximumBatch)
        let headDim = try STALimits.check(
            self.headDim ?? 128, "--head-dim", minimum: 1, maximum: STALimits.maximumHeadDim)
        let text = try STALimits.check(self.text ?? 0, "--text", minimum: 0, maximum: STALimits.maximumSequenceLength)
        let layout = try STALayout(
            canvas: ShapeSyntax.sizes(canvas ?? "30x48x80", what: "canvas"),
            tile: ShapeSyntax.sizes(tile ?? "6x8x8", what: "tile"), textCount: text, textValid: textValid)
        // The [B, H, S, D] tensors a run of this problem allocates.
        _ = try STALimits.product(
            [batch, heads, layout.sequenceLength, headDim], "tensor elements (batch × heads × sequence × head dim)",
            limit: STALimits.maximumTensorElements)
        let window = self.window ?? "3x3x3"
        let windows = try ShapeSyntax.headWindows(window, layout: layout, heads: heads)
        return [AttentionProblem(name: window, layout: layout, headWindows: windows, batch: batch, headDim: headDim, dtype: storage)]
    }
}
