import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

extension Verification {
    /// Checks the NaN contract of the backward pass on `backend` (docs/SEMANTICS.md): NaN never turns into
    /// zeros. Runs forward and backward clean, then with +inf in one element of a q row (batch 0, head 0:
    /// the forward makes that row NaN, lse included) and NaN in one element of a dO row (batch 1, head 1:
    /// its lse is ordinary). Expected: the dq row of each poisoned row and the dk, dv rows of every key it
    /// attends are NaN in every element — except dv = Σ P dO for the dO row, NaN in that column only, as
    /// the reference gives it; every other gradient element is bit for bit the clean run's — or, for a
    /// backward whose dq is not bit-reproducible (two clean runs differ: the Hopper kernel's float32
    /// atomics), finite and within the dtype's tolerance of the clean run's row scale.
    /// `badEmptyRows` counts the rows that break this; the errors are 0. Problems: `nanContractCases()`.
    public static func runNaNContractBackward(_ c: AttentionProblem, on backend: AttentionBackend, seed: UInt64) throws -> Outcome {
        switch c.dtype {
        case .float16: return try runNaNContractBackward(c, as: Float16.self, on: backend, seed: seed)
        default: return try runNaNContractBackward(c, as: BFloat16.self, on: backend, seed: seed)
        }
    }

    static func runNaNContractBackward<T: StorageScalar>(
        _ c: AttentionProblem, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 4, seed: seed)
        let layout = plan.layout
        let (s, d) = (layout.sequenceLength, c.headDim)
        func row(_ batch: Int, _ head: Int, _ position: Int) -> Int { (batch * plan.heads + head) * s + position }
        func gradients(_ q: [T], _ outputGradient: [T]) throws -> [[T]] {
            let forward = try attention.forward(q: q, k: inputs[1], v: inputs[2], on: backend)
            let result = try attention.backward(
                q: q, k: inputs[1], v: inputs[2], output: forward.output, lse: forward.lse,
                outputGradient: outputGradient, on: backend)
            return [result.dq, result.dk, result.dv]
        }
        let clean = try gradients(inputs[0], inputs[3])
        let reproducible = try gradients(inputs[0], inputs[3]).elementsEqual(clean) { a, b in
            a.elementsEqual(b) { $0.floatValue.bitPattern == $1.floatValue.bitPattern }
        }
        let bound = tolerance(c.dtype)
        // Whether a gradient row that no poisoned value reaches is the clean run's (`skip`: a column left out).
        func unchanged(_ values: ArraySlice<T>, _ before: ArraySlice<T>, skip: Int? = nil) -> Bool {
            let scale = before.reduce(Float(0)) { max($0, abs($1.floatValue)) }
            return zip(values, before).enumerated().allSatisfy { column, pair in
                if column == skip { return true }
                let (a, b) = (pair.0.floatValue, pair.1.floatValue)
                if a.bitPattern == b.bitPattern { return true }
                return !reproducible && a.isFinite && abs(a - b) <= Float(bound) * max(scale, Float.leastNormalMagnitude)
            }
        }
        var q = inputs[0], outputGradient = inputs[3]
        let poisonedQuery = row(0, 0, layout.tileVolume)   // tile 1's first token: a real row
        let poisonedGradient = row(1, 1, layout.paddedVideoTokenCount + 1)   // a valid text row
        q[poisonedQuery * d + 1] = T(.infinity)
        outputGradient[poisonedGradient * d + 3] = T(.nan)
        let poisoned = try gradients(q, outputGradient)

        // The keys each poisoned row attends: its window's key tiles (all tiles for a text row), then the
        // valid text.
        let real = ReferenceAttention.realQueryMask(layout: layout)
        func keys(of poisonedRow: Int) -> Set<Int> {
            let base = poisonedRow - poisonedRow % s, position = poisonedRow % s, head = (poisonedRow / s) % plan.heads
            let video = layout.paddedVideoTokenCount
            let tiles = position < video ? Set(plan.keyTiles(head: head, queryTile: position / layout.tileVolume)) : nil
            return Set((0..<s).filter { key in
                real[key] && (key >= video || tiles?.contains(Int32(key / layout.tileVolume)) ?? true)
            }.map { base + $0 })
        }
        let partialNaN = keys(of: poisonedGradient)
        let nanKeys = keys(of: poisonedQuery).union(partialNaN)
        var bad = 0
        for (index, (after, before)) in zip(poisoned, clean).enumerated() {
            for r in 0..<(after.count / d) {
                let expectNaN = index == 0 ? (r == poisonedQuery || r == poisonedGradient) : nanKeys.contains(r)
                let values = after[(r * d)..<((r + 1) * d)]
                let original = before[(r * d)..<((r + 1) * d)]
                if partialNaN.contains(r) && index == 2 {
                    // dv = Σ P dO: the NaN column of dO reaches its column only.
                    if !(values[values.startIndex + 3].floatValue.isNaN && unchanged(values, original, skip: 3)) { bad += 1 }
                } else if expectNaN {
                    if values.contains(where: { !$0.floatValue.isNaN }) { bad += 1 }
                } else if !unchanged(values, original) {
                    bad += 1
                }
            }
        }
        return Outcome(
            name: "backward " + c.name, dtype: c.dtype,
            headDim: d, sequenceLength: s, outputError: 0, lseError: 0, badEmptyRows: bad, tolerance: tolerance(c.dtype))
    }
}
