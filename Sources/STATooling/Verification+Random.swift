import STAGeometry
import STATensors

extension Verification {
    /// `count` random problems drawn from `seed`, small enough to reference every row in float64: 1D, 2D
    /// and 3D canvases (3D twice as often) of 1–8, 1–6 or 1–4 tiles per axis, the last tile partial on
    /// about half the axes of more than one tile (holes); tile extents odd, even or not multiples of 8;
    /// text on about half of them (1–300 tokens, sometimes padded, sometimes with no valid token); one to
    /// three heads, each with its own window (odd sizes below the axis' tile count, or the whole axis);
    /// batch 1 or 2; a softmax scale other than 1/√D on about a third; the storage type and head dimension
    /// from `dtypes` and `headDims`.
    ///
    /// The same seed gives the same problems on every machine (SplitMix64 only). Each name is the
    /// command-line options that describe the problem, so a failure can be rerun alone. Padded sequences
    /// stay at or below 2,304 tokens and batch × heads at or below 4, which bounds the float64 reference
    /// of a backward check to about 1.5 · 10¹⁰ multiply-adds at D = 128. Cost: O(count) draws.
    public static func randomCases(
        count: Int, seed: UInt64, dtypes: [DType] = [.bfloat16, .float16], headDims: [Int] = [64, 128]
    ) throws -> [AttentionProblem] {
        precondition(!dtypes.isEmpty && !headDims.isEmpty, "random cases need a storage type and a head dimension")
        var random = RandomInputs(seed: seed)
        func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
        var cases = [AttentionProblem]()
        while cases.count < count {
            let rank = pick([1, 2, 3, 3])
            let tileChoices: [Int] =
                rank == 1 ? [1, 16, 24, 48, 64, 100, 128, 200] : rank == 2 ? [1, 3, 4, 6, 8, 12, 16] : [1, 2, 3, 4, 6, 8]
            var tile = [Int](), canvas = [Int]()
            for _ in 0..<rank {
                let t = pick(tileChoices)
                let grid = 1 + below(rank == 1 ? 8 : rank == 2 ? 6 : 4)
                // About half the axes of more than one tile end in a partial tile (holes).
                let short = grid > 1 && t > 1 && below(2) == 0 ? 1 + below(t - 1) : 0
                tile.append(t)
                canvas.append(t * grid - short)
            }
            let textCount = below(2) == 0 ? 0 : pick([1, 5, 16, 63, 64, 77, 129, 200, 256, 300])
            let textValid = textCount == 0 ? 0 : pick([textCount, textCount, below(textCount + 1), 0])
            let layout = try STALayout(canvas: canvas, tile: tile, textCount: textCount, textValid: textValid)
            let heads = 1 + below(3)
            let batch = 1 + below(2)
            guard layout.sequenceLength <= 2304, batch * heads <= 4 else { continue }
            // Per axis of each head: an odd size below the axis' tile count, or the whole axis.
            let windows = (0..<heads).map { _ in
                Window(tiles: layout.tileGrid.map { grid in
                    let odd = Array(stride(from: 1, to: grid, by: 2))
                    return odd.isEmpty || below(3) == 0 ? grid : pick(odd)
                })
            }
            let scale: Float? = below(3) == 0 ? pick([0.02, 0.05, 0.3, 0.7]) : nil
            var name = "--canvas \(shape(canvas)) --tile \(shape(tile))"
            if textCount > 0 { name += " --text \(textCount)" + (textValid < textCount ? " --text-valid \(textValid)" : "") }
            name += " --window \(windows.map(\.description).joined(separator: ","))"
            if batch > 1 { name += " --batch \(batch)" }
            if let scale { name += " scale \(scale)" }
            cases.append(AttentionProblem(
                name: name, layout: layout, headWindows: try windows.map { try layout.resolve($0) }, batch: batch,
                headDim: pick(headDims), dtype: pick(dtypes), scale: scale))
        }
        return cases
    }

    /// Per-row text cases made from drawn problems (`verify --random` on a GPU): each problem with text
    /// becomes a batch of two rows whose valid text lengths are drawn from 0...count (the same seed, the
    /// same lengths). Cost: O(problems).
    public static func randomTextRowsCases(_ problems: [AttentionProblem], seed: UInt64) -> [TextRowsCase] {
        var random = RandomInputs(seed: ~seed)
        return problems.filter { $0.layout.text.count > 0 }.map { p in
            let count = p.layout.text.count
            let lengths = (0..<2).map { _ in Int(random.next() % UInt64(count + 1)) }
            let problem = AttentionProblem(
                name: p.name, layout: p.layout, headWindows: p.headWindows, batch: 2, headDim: p.headDim,
                dtype: p.dtype, scale: p.scale)
            return TextRowsCase(problem: problem, textValid: lengths)
        }
    }

    private static func shape(_ extents: [Int]) -> String { extents.map(String.init).joined(separator: "x") }
}
