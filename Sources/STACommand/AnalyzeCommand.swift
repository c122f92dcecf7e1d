import ArgumentParser
import STATensors
import SlidingTileAttention
import STATooling
import STAGeometry

/// Options shared by `analyze` and `render`: the layout, the STA window and the kernel block size.
struct MaskOptions: ParsableArguments {
    @Option(help: "Canvas in tokens, e.g. 48x48x48.")
    var canvas: String = "48x48x48"

    @Option(help: "Tile in tokens, e.g. 4x4x4.")
    var tile: String = "4x4x4"

    @Option(help: "STA window in tiles (3x3x3) or tokens (12x12x12t). NATTEN and Swin use the same size in tokens (NATTEN: the odd size just below an even one).")
    var window: String = "3x3x3"

    @Option(help: "Kernel query block in tokens (default: one tile).")
    var queryBlock: Int?

    @Option(help: "Kernel key block in tokens (default: the query block).")
    var keyBlock: Int?

    func layout() throws -> STALayout {
        try STALayout(canvas: ShapeSyntax.sizes(canvas, what: "canvas"), tile: ShapeSyntax.sizes(tile, what: "tile"))
    }

    /// The STA window and the token window NATTEN and Swin get for comparison.
    func windows(_ layout: STALayout) throws -> (sta: Window, nattenTokens: [Int], swinTokens: [Int]) {
        let sta = try ShapeSyntax.window(window, layout: layout)
        let tokens = zip(sta.tiles, layout.tile.extents).enumerated().map { axis, pair in
            min(pair.0 * pair.1, layout.canvas.extents[axis])
        }
        let natten = tokens.enumerated().map { axis, size in
            size == layout.canvas.extents[axis] || size % 2 == 1 ? size : size - 1
        }
        return (sta, natten, tokens)
    }

    func families(_ layout: STALayout) throws -> [(name: String, family: MaskFamily)] {
        let (sta, natten, swin) = try windows(layout)
        func text(_ sizes: [Int]) -> String { sizes.map(String.init).joined(separator: "x") }
        return [
            ("STA \(sta) tiles", .sta(sta)),
            ("NATTEN \(text(natten))", .natten(windowTokens: natten)),
            ("tiled NATTEN \(text(natten))", .tiledNatten(windowTokens: natten)),
            ("Swin \(text(swin))", .swin(windowTokens: swin, shifted: false)),
            ("Swin shifted \(text(swin))", .swin(windowTokens: swin, shifted: true)),
            ("full", .full),
        ]
    }

    func blocks(_ layout: STALayout) -> (query: Int, key: Int) {
        let query = queryBlock ?? layout.tileVolume
        return (query, keyBlock ?? query)
    }
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify the blocks of the attention map as dense, mixed or empty, across mask families.",
        discussion: "Example (the paper's Table 1): sta analyze --canvas 48x48x48 --tile 4x4x4 --window 12x12x12t")

    @OptionGroup var options: MaskOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let layout = try options.layout()
        let blocks = options.blocks(layout)
        var table = TextTable("family", "dense", "mixed", "empty", "attended pairs")
        var records = [JSONValue]()
        for (name, family) in try options.families(layout) {
            let analysis = try MaskAnalysis(layout: layout, family: family, queryBlock: blocks.query, keyBlock: blocks.key)
            table.append(
                name, fixed(analysis.denseFraction * 100, 2) + "%", fixed(analysis.mixedFraction * 100, 2) + "%",
                fixed(analysis.emptyFraction * 100, 2) + "%", "\(analysis.attendedPairs)")
            records.append(.object([
                ("family", .string(name)), ("dense", .integer(analysis.dense)), ("mixed", .integer(analysis.mixed)),
                ("empty", .integer(analysis.empty)), ("dense_fraction", .real(analysis.denseFraction)),
                ("mixed_fraction", .real(analysis.mixedFraction)), ("empty_fraction", .real(analysis.emptyFraction)),
                ("attended_pairs", .integer(analysis.attendedPairs)),
            ]))
        }
        if json {
            print(JSONValue.object([
                ("layout", .string("\(layout)")), ("query_block", .integer(blocks.query)),
                ("key_block", .integer(blocks.key)), ("families", .array(records)),
            ]).serialized)
        } else {
            print("\(layout); blocks \(blocks.query)×\(blocks.key) tokens")
            print(table.rendered)
        }
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the block pattern of a mask family as a PNG (dense dark, mixed mid, empty white).")

    @OptionGroup var options: MaskOptions

    @Option(help: "Mask family: sta, natten, tiled-natten, swin, swin-shifted or full.")
    var family: String = "sta"

    @Option(help: "PNG file to write.")
    var output: String = "blocks.png"

    @Option(help: "Largest width and height in pixels, 1...\(STALimits.maximumImageSide).")
    var maxPixels: Int = 1024

    func run() throws {
        let maxPixels = try STALimits.check(self.maxPixels, "--max-pixels", minimum: 1, maximum: STALimits.maximumImageSide)
        try OutputFile.validate(output)
        let layout = try options.layout()
        let names = ["sta", "natten", "tiled-natten", "swin", "swin-shifted", "full"]
        guard let index = names.firstIndex(of: family.lowercased()) else {
            throw ValidationError("unknown family '\(family)'; families are \(names.joined(separator: ", "))")
        }
        let (name, maskFamily) = try options.families(layout)[index]
        let blocks = options.blocks(layout)
        let analysis = try MaskAnalysis(layout: layout, family: maskFamily, queryBlock: blocks.query, keyBlock: blocks.key)
        try OutputFile.write(BlockPattern.png(analysis, maxPixels: maxPixels), to: output)
        print("\(name): \(analysis.rows)×\(analysis.columns) blocks, \(fixed(analysis.denseFraction * 100, 2))% dense, "
              + "\(fixed(analysis.mixedFraction * 100, 2))% mixed → \(output)")
    }
}
