import SlidingTileAttention
import STAGeometry
import STATensors

extension Verification {
    /// Problems for the NaN contract: a padded canvas with text (some of it padding), two windows, batch 2,
    /// in bf16 and fp16 at head dims 64 and 128.
    public static func nanContractCases() throws -> [AttentionProblem] {
        let layout = try STALayout(canvas: [10, 20, 20], tile: [4, 8, 8], textCount: 16, textValid: 12)
        let windows = [Window(tiles: [1, 3, 1]), Window(tiles: [3, 3, 3])]
        return [DType.bfloat16, .float16].flatMap { dtype in
            [64, 128].map {
                AttentionProblem(
                    name: "NaN contract 3D 10x20x20 tile 4x8x8 text 12/16", layout: layout, headWindows: windows, batch: 2,
                    headDim: $0, dtype: dtype)
            }
        }
    }

    /// Checks the NaN contract of the forward kernel on `gpu`: NaN or ±inf in q, k or v reaches exactly the
    /// rows that read it, as NaN in O and LSE, as in PyTorch. Runs the problem clean, then with +inf in one
    /// element of a q row (batch 0, head 0: +inf · k gives +inf and −inf scores, so NaN) and NaN in one
    /// element of a k row (batch 1, head 0). Expected: that q row, and every row of (batch 1, head 0) that
    /// attends the poisoned key (real video queries whose window holds its tile, valid text queries), are NaN
    /// in every element of O and in LSE; every other row is bit for bit the clean run's (holes and padding
    /// stay 0 / −∞). `badEmptyRows` counts the rows that break this; the errors are 0.
    public static func runNaNContract(_ c: AttentionProblem, on gpu: CUDABackend, seed: UInt64) throws -> Outcome {
        switch c.dtype {
        case .float16: return try runNaNContract(c, as: Float16.self, on: gpu, seed: seed)
        default: return try runNaNContract(c, as: BFloat16.self, on: gpu, seed: seed)
        }
    }

    static func runNaNContract<T: StorageScalar>(_ c: AttentionProblem, as: T.Type, on gpu: CUDABackend, seed: UInt64) throws -> Outcome {
        let plan = try c.plan()
        let layout = plan.layout
        let (sequence, headDim) = (layout.sequenceLength, c.headDim)
        let rows = c.batch * plan.heads * sequence
        let attention = try SlidingTileAttention(plan: plan, batch: c.batch, headDim: headDim)
        var random = RandomInputs(seed: seed)
        var q: [T] = random.values(rows * headDim)
        var k: [T] = random.values(rows * headDim)
        let v: [T] = random.values(rows * headDim)

        // Through the engine: output and lse poisoned on the device first.
        func run() throws -> (output: [T], lse: [Float]) { try attention.forward(q: q, k: k, v: v, on: .cuda(gpu)) }
        let clean = try run()

        // Row index of (batch, head, position); position 0 of tile 1 and of tile 0 are real tokens.
        func row(_ batch: Int, _ head: Int, _ position: Int) -> Int { (batch * plan.heads + head) * sequence + position }
        let poisonedQuery = row(0, 0, layout.tileVolume)
        let poisonedKeyPosition = 0
        q[poisonedQuery * headDim + 1] = T(.infinity)
        k[row(1, 0, poisonedKeyPosition) * headDim + 2] = T(.nan)
        let poisoned = try run()

        // The query tiles of head 0 whose key tiles hold the poisoned key's tile (tile 0).
        let window = Int(plan.windowIndexByHead[0])
        var attendsTileZero = Set<Int>()
        for queryTile in 0..<layout.tileCount {
            let listRow = window * layout.tileCount + queryTile
            let tiles = plan.keyTiles[Int(plan.keyTileStart[listRow])..<Int(plan.keyTileStart[listRow + 1])]
            if tiles.contains(Int32(poisonedKeyPosition / layout.tileVolume)) { attendsTileZero.insert(queryTile) }
        }
        let videoTokens = layout.tileCount * layout.tileVolume
        var bad = 0
        for r in 0..<rows {
            let position = r % sequence, head = (r / sequence) % plan.heads, batch = r / (sequence * plan.heads)
            let real = clean.lse[r] != -.infinity   // every real row attends at least its own tile
            let expectNaN = r == poisonedQuery
                || (batch == 1 && head == 0 && real
                    && (position >= videoTokens || attendsTileZero.contains(position / layout.tileVolume)))
            let values = poisoned.output[(r * headDim)..<((r + 1) * headDim)]
            if expectNaN {
                if !poisoned.lse[r].isNaN || values.contains(where: { !$0.floatValue.isNaN }) { bad += 1 }
            } else {
                let same = poisoned.lse[r].bitPattern == clean.lse[r].bitPattern
                    && zip(values, clean.output[(r * headDim)..<((r + 1) * headDim)]).allSatisfy {
                        $0.floatValue.bitPattern == $1.floatValue.bitPattern
                    }
                if !same { bad += 1 }
            }
        }
        return Outcome(
            name: c.name, dtype: c.dtype, headDim: headDim, sequenceLength: sequence, outputError: 0, lseError: 0,
            badEmptyRows: bad, tolerance: tolerance(c.dtype))
    }
}
