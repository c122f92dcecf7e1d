import ArgumentParser
import SlidingTileAttention

@main
struct STA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sta",
        abstract: "Sliding Tile Attention: plans, mask analysis, and CPU and CUDA attention kernels.",
        discussion: "Windows are written in tiles (3x3x3), in tokens (18x24x24t) or as 'full'; per-head lists "
            + "are comma-separated with optional repeat counts: 5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1. "
            + "Suites: hunyuan, wan, image (the benchmark suites of the specification).",
        version: SlidingTileAttentionVersion.string,
        subcommands: [Demo.self, Plan.self, Analyze.self, Render.self, Verify.self, Bench.self, Kernels.self, Search.self],
        defaultSubcommand: Demo.self
    )
}
