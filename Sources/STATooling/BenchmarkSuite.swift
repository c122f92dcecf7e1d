import SlidingTileAttention
import STAGeometry
import STATensors

/// One attention problem: a layout, per-head windows, batch, head dim and storage type.
public struct AttentionProblem: Sendable {
    public let name: String
    public let layout: STALayout
    public let headWindows: [Window]
    public let batch: Int
    public let headDim: Int
    public let dtype: DType

    public init(name: String, layout: STALayout, headWindows: [Window], batch: Int, headDim: Int, dtype: DType) {
        self.name = name
        self.layout = layout
        self.headWindows = headWindows
        self.batch = batch
        self.headDim = headDim
        self.dtype = dtype
    }

    public var heads: Int { headWindows.count }
    public func plan() throws -> AttentionPlan { try AttentionPlan(layout: layout, headWindows: headWindows) }
}

/// The benchmark suites of the specification (§7), by name.
public enum BenchmarkSuite: String, CaseIterable, Sendable {
    case hunyuan, wan, image

    /// The suite's problems, headline first.
    public func problems() throws -> [AttentionProblem] {
        switch self {
        case .hunyuan:
            let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
            let windows: [(String, String)] = [
                ("3x3x3", "3x3x3"), ("5x5x5", "5x5x5"),
                ("mixed", "5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1"), ("dense", "full"),
            ]
            return try windows.map { name, spec in
                AttentionProblem(
                    name: "hunyuan \(name)", layout: layout,
                    headWindows: try ShapeSyntax.headWindows(spec, layout: layout, heads: 24),
                    batch: 1, headDim: 128, dtype: .bfloat16)
            }
        case .wan:
            let layout = try STALayout(canvas: [21, 45, 80], tile: [6, 8, 8])
            return try ["3x3x3", "3x5x5"].map { spec in
                AttentionProblem(
                    name: "wan \(spec)", layout: layout,
                    headWindows: try ShapeSyntax.headWindows(spec, layout: layout, heads: 40),
                    batch: 1, headDim: 128, dtype: .bfloat16)
            }
        case .image:
            return try [128, 256].map { side in
                let layout = try STALayout(canvas: [side, side], tile: [8, 16])
                return AttentionProblem(
                    name: "image \(side)x\(side) 5x5", layout: layout,
                    headWindows: try ShapeSyntax.headWindows("5x5", layout: layout, heads: 24),
                    batch: 1, headDim: 128, dtype: .bfloat16)
            }
        }
    }
}
