import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

extension Verification {
    /// Query rows (sequence indices) that a sampled check of `layout` references: the first, middle and
    /// last row of the centre tile, of every corner and mid-edge tile of the tile grid (the tiles whose
    /// windows are clamped inward, and the ones that hold holes when an axis is padded), text rows on
    /// both sides of every 64-row boundary, the last valid and the first and last padding text rows, and
    /// `randomCount` rows drawn from `random`. Ascending, without repeats.
    ///
    /// Cost: O(tiles of the grid's border) to choose; each row costs 4 · D flops per attended key per
    /// (batch, head) in the reference.
    public static func sampledRows(of layout: STALayout, randomCount: Int = 16, random: inout RandomInputs) -> [Int] {
        var rows = Set<Int>()
        let grid = layout.tileGrid
        // Per axis: first, middle and last tile index.
        let picks = grid.map { n in Array(Set([0, n / 2, n - 1])).sorted() }
        var coordinates: [[Int]] = [[]]
        for axisPicks in picks {
            coordinates = coordinates.flatMap { prefix in axisPicks.map { prefix + [$0] } }
        }
        for coordinate in coordinates {
            var tile = 0
            for (axis, index) in coordinate.enumerated() { tile = tile * grid[axis] + index }
            let first = tile * layout.tileVolume
            rows.formUnion([first, first + layout.tileVolume / 2, first + layout.tileVolume - 1])
        }
        let video = layout.paddedVideoTokenCount
        let text = layout.text
        if text.count > 0 {
            var textRows = [0, text.count - 1]
            if text.valid > 0 { textRows.append(text.valid - 1) }
            if text.valid < text.count { textRows.append(text.valid) }
            for boundary in stride(from: 64, to: text.count, by: 64) { textRows += [boundary - 1, boundary] }
            rows.formUnion(textRows.map { video + $0 })
        }
        let length = layout.sequenceLength
        for _ in 0..<randomCount { rows.insert(Int(random.next() % UInt64(length))) }
        return rows.sorted()
    }

    /// Checks a backend on a layout too large to reference whole (the benchmark layouts): the kernel's
    /// output on every row, against the float64 reference on `sampledRows(of:)` of every (batch, head);
    /// every row that attends nothing (holes, padding text), in every (batch, head), must be exactly 0
    /// with lse −∞. Inputs are drawn from `seed`; outputs are poisoned by the backend before the run.
    ///
    /// Cost: one forward pass, the storage-to-double conversion of q, k, v (8 bytes per element on the
    /// host) and the reference on the sampled rows. Reached through `run(_:.sampledRows:on:seed:)`.
    static func runSampled<T: StorageScalar>(
        _ c: AttentionProblem, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 3, seed: seed)
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        var random = RandomInputs(seed: ~seed)
        let rows = sampledRows(of: c.layout, random: &random)
        let result = try attention.forward(q: q, k: k, v: v, scale: c.scale, on: backend)
        let reference = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: c.batch, headDim: c.headDim, plan: plan, scale: c.scale.map(Double.init),
            queryRows: rows)
        return compareSampled(
            c, rows: rows, output: result.output, lse: result.lse, reference: reference.output,
            referenceLSE: reference.lse)
    }

    /// The outcome of a sampled check: the relative error over the sampled rows that attend something,
    /// the largest lse error there, and the count of rows anywhere that attend nothing but were not
    /// written as 0 / −∞.
    static func compareSampled<T: StorageScalar>(
        _ c: AttentionProblem, rows: [Int], output: [T], lse: [Float], reference: [Double], referenceLSE: [Double]
    ) -> Outcome {
        let length = c.layout.sequenceLength
        let real = ReferenceAttention.realQueryMask(layout: c.layout)
        var difference = 0.0, norm = 0.0, lseError = 0.0
        var badEmptyRows = 0
        for slice in 0..<(c.batch * c.heads) {
            // Every row that attends nothing, sampled or not.
            for row in 0..<length where !real[row] {
                let index = slice * length + row
                let start = index * c.headDim
                if lse[index] != -.infinity || output[start..<(start + c.headDim)].contains(where: { $0.floatValue != 0 }) {
                    badEmptyRows += 1
                }
            }
            for row in rows where real[row] {
                let index = slice * length + row
                for i in (index * c.headDim)..<((index + 1) * c.headDim) {
                    let d = Double(output[i].floatValue) - reference[i]
                    difference += d.isNaN ? .infinity : d * d
                    norm += reference[i] * reference[i]
                }
                let e = abs(Double(lse[index]) - referenceLSE[index])
                lseError = max(lseError, e.isNaN ? .infinity : e)
            }
        }
        return Outcome(
            name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: length,
            outputError: (difference / norm).squareRoot(), lseError: lseError, badEmptyRows: badEmptyRows,
            tolerance: tolerance(c.dtype))
    }
}
