import ArgumentParser
import SlidingTileAttention
import STATooling
import STAGeometry
import STATensors

/// The options that describe an attention problem: a named suite, or a canvas, tile, text and windows.
struct ProblemOptions: ParsableArguments {
    @Option(help: "A benchmark suite of the specification: hunyuan, wan or image (overrides the shape options).")
    var suite: String?

    @Option(help: "Canvas in tokens, e.g. 30x48x80 (T×H×W), 128x128 (H×W) or 4096 (L).")
    var canvas: String = "30x48x80"

    @Option(help: "Tile in tokens, one size per canvas axis, e.g. 6x8x8.")
    var tile: String = "6x8x8"

    @Option(help: "Window in tiles (3x3x3), tokens (18x24x24t) or 'full'; or a per-head list.")
    var window: String = "3x3x3"

    @Option(help: "Text tokens after the video tokens.")
    var text: Int = 0

    @Option(help: "Valid (non-padding) text tokens; default all.")
    var textValid: Int?

    @Option(help: "Attention heads.")
    var heads: Int = 24

    @Option(help: "Batch size.")
    var batch: Int = 1

    @Option(help: "Head dimension D.")
    var headDim: Int = 128

    @Option(help: "Storage type: bf16, f16 or f32.")
    var dtype: String = "bf16"

    /// The suite's problems, or the one problem the shape options describe.
    func problems() throws -> [AttentionProblem] {
        if let suite {
            guard let named = BenchmarkSuite(rawValue: suite.lowercased()) else {
                throw ValidationError("unknown suite '\(suite)'; suites are \(BenchmarkSuite.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return try named.problems()
        }
        guard let storage = DType(name: dtype), [.bfloat16, .float16, .float32].contains(storage) else {
            throw ValidationError("dtype '\(dtype)' is not supported; use bf16, f16 or f32")
        }
        guard heads >= 1 else { throw ValidationError("--heads is \(heads); it must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch is \(batch); it must be at least 1") }
        guard headDim >= 1 else { throw ValidationError("--head-dim is \(headDim); it must be at least 1") }
        let layout = try STALayout(
            canvas: ShapeSyntax.sizes(canvas, what: "canvas"), tile: ShapeSyntax.sizes(tile, what: "tile"),
            textCount: text, textValid: textValid)
        let windows = try ShapeSyntax.headWindows(window, layout: layout, heads: heads)
        return [AttentionProblem(name: window, layout: layout, headWindows: windows, batch: batch, headDim: headDim, dtype: storage)]
    }
}
