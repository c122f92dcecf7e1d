import ArgumentParser
import STATensors
import SlidingTileAttention
import STATooling
import STAGeometry

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the plan of a set-up: tiles, key tiles per query tile, sparsity, FLOPs against dense.")

    @OptionGroup var problem: ProblemOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        var table = TextTable("problem", "canvas", "tile", "grid", "S", "heads", "key tiles/query tile", "video sparsity", "eff. GFLOP", "vs dense", "build ms")
        var records = [JSONValue]()
        for problem in try problem.problems() {
            let start = MonotonicClock.now
            let plan = try problem.plan()
            let buildMilliseconds = MonotonicClock.milliseconds(since: start)
            let layout = plan.layout
            let keyTiles = plan.windows.map(\.tileCount)
            let flops = plan.effectiveFLOPs(batch: problem.batch, headDim: problem.headDim)
            let dense = plan.denseFLOPs(batch: problem.batch, headDim: problem.headDim)
            table.append(
                problem.name, "\(layout.canvas)", "\(layout.tile)", layout.tileGrid.map(String.init).joined(separator: "×"),
                "\(layout.sequenceLength)", "\(plan.heads)",
                Set(keyTiles).sorted().map(String.init).joined(separator: ","),
                fixed(plan.videoSparsity * 100, 2) + "%", fixed(flops / 1e9, 1), fixed(flops / dense, 4),
                fixed(buildMilliseconds, 2))
            records.append(.object([
                ("problem", .string(problem.name)), ("canvas", .array(layout.canvas.extents.map { .integer($0) })),
                ("tile", .array(layout.tile.extents.map { .integer($0) })),
                ("tile_grid", .array(layout.tileGrid.map { .integer($0) })),
                ("text", .integer(layout.text.count)), ("text_valid", .integer(layout.text.valid)),
                ("sequence_length", .integer(layout.sequenceLength)), ("heads", .integer(plan.heads)),
                ("windows", .array((0..<plan.heads).map { .array(plan.window(head: $0).tiles.map { .integer($0) }) })),
                ("video_sparsity", .real(plan.videoSparsity)), ("effective_flops", .real(flops)),
                ("dense_flops", .real(dense)), ("build_ms", .real(buildMilliseconds)),
            ]))
        }
        print(json ? JSONValue.array(records).serialized : table.rendered)
    }
}
