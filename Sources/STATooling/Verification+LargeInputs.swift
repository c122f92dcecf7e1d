import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

extension Verification {
    /// Problems for large finite inputs: the NaN-contract geometry (a padded canvas with text, some of it
    /// padding, two windows, batch 2) in bf16 and fp16 at head dims 64 and 128.
    public static func largeInputCases() throws -> [AttentionProblem] {
        let layout = try STALayout(canvas: [10, 20, 20], tile: [4, 8, 8], textCount: 16, textValid: 12)
        let windows = [Window(tiles: [1, 3, 1]), Window(tiles: [3, 3, 3])]
        return [DType.bfloat16, .float16].flatMap { dtype in
            [64, 128].map {
                AttentionProblem(
                    name: "large finite inputs 3D 10x20x20 tile 4x8x8 text 12/16", layout: layout, headWindows: windows,
                    batch: 2, headDim: $0, dtype: dtype)
            }
        }
    }

    /// The rows the large-input check scales (storage type's magnitudes: bf16 reaches past the fp32 range
    /// of scores, fp16 cannot and gets |q·k| of 4e6 per element):
    /// - batch 0, head 0: the q row of tile 1's first token × `large`, and the k row of its second token set
    ///   to that q row × `large` (bf16: a score of 1e40, past fp32; every row of the tiles that attend tile 1
    ///   meets that key, with scores of ±1e20);
    /// - batch 1, head 0: the q row of text token 2 × `huge` and the k row of token 0 set to that q row ×
    ///   `large` (bf16: the text row's score reaches 1e50, its lse passes the fp32 range);
    /// - batch 1, head 1 (forward only): every v row × `valueScale` (bf16: about 3e38, so the unnormalised
    ///   P·V sum passes fp32 although every output is finite);
    /// - batch 0, head 1 (forward only): component 0 of every k row set to `large`, component 0 of every q
    ///   row to 0, and the q row of tile 2's first token to (−large, 0, …): that row's bf16 scores are all
    ///   −1e40, every one −∞ in fp32, and its output is the mean of its values. (Component 0 of the other q
    ///   rows is 0 so that their scores stay well conditioned: a term of ±1e19 common to every score of a
    ///   row would leave float64 too, at a spacing of 1024, only rounding noise of the rest, and no
    ///   reference could judge it.) Component 1 of those q rows is 0 as well, but for the q row of the
    ///   middle tile's first token, (0, u, 0, …), which attends every tile: component 1 of the next-to-last
    ///   tile's first k row is 2000, which puts that key's score 126.8 above the row's first keys (log2
    ///   units, ±0.3 from rounding u to the storage type), and component 1 of every k row of the last tile
    ///   is 48 (3 above them). Where a lazy online softmax meets that key, the row's chunk sum lies in
    ///   [2¹²⁶, 2¹²⁸): finite, but rescaling by its inverse would flush to 0, and the last tile's keys,
    ///   2^−124 after it, would make a finite, wrong row (`moved_base`).
    static func scaleLargeRows<T: StorageScalar>(
        q: inout [T], k: inout [T], v: inout [T], plan: AttentionPlan, headDim: Int, values: Bool
    ) {
        let layout = plan.layout
        let s = layout.sequenceLength
        let bf16 = T.dtype == .bfloat16
        let large: Float = bf16 ? 1e20 : 2000
        let huge: Float = bf16 ? 1e30 : 2000
        let valueScale: Float = bf16 ? 3e38 : 6e4
        func row(_ batch: Int, _ head: Int, _ position: Int) -> Int { (batch * plan.heads + head) * s + position }
        func scale(_ tensor: inout [T], _ row: Int, by factor: Float) {
            for c in 0..<headDim { tensor[row * headDim + c] = T(tensor[row * headDim + c].floatValue * factor) }
        }
        // k row `key` ← q row `query` × factor: their score is positive (the largest of the query's row).
        func align(key: Int, with query: Int, by factor: Float) {
            for c in 0..<headDim { k[key * headDim + c] = T(q[query * headDim + c].floatValue * factor) }
        }
        align(key: row(0, 0, layout.tileVolume + 1), with: row(0, 0, layout.tileVolume), by: large)
        scale(&q, row(0, 0, layout.tileVolume), by: large)
        align(key: row(1, 0, 0), with: row(1, 0, layout.paddedVideoTokenCount + 2), by: large)
        scale(&q, row(1, 0, layout.paddedVideoTokenCount + 2), by: huge)
        if values {
            for position in 0..<s { scale(&v, row(1, 1, position), by: valueScale) }
            // Batch 0, head 1: component 0 of every k row `large` (and of every q row 0), one q row (−large, 0, …, 0):
            // every score of that row is −large² · scale (bf16: −1e40, −∞ in fp32; its lse saturates to
            // −∞ too, but its output is the mean of its values, not 0).
            for position in 0..<s {
                k[row(0, 1, position) * headDim] = T(large)
                q[row(0, 1, position) * headDim] = T(0)
                q[row(0, 1, position) * headDim + 1] = T(0)
            }
            let query = row(0, 1, 2 * layout.tileVolume)
            for c in 0..<headDim { q[query * headDim + c] = T(c == 0 ? -large : 0) }
            // Batch 0, head 1: one key 126.8 above the row's first keys (log2 units), and the keys of the
            // last tile, which the row meets after it, 3 above them.
            let gap = 126.8, keyComponent: Float = 2000, lastTileComponent: Float = 48
            let lone = row(0, 1, (layout.tileCount / 2) * layout.tileVolume)
            let u = gap / (Double(keyComponent) * (1 / Double(headDim).squareRoot()) * 1.4426950408889634)
            for c in 0..<headDim { q[lone * headDim + c] = T(c == 1 ? Float(u) : 0) }
            k[row(0, 1, (layout.tileCount - 2) * layout.tileVolume) * headDim + 1] = T(keyComponent)
            for offset in 0..<layout.tileVolume {
                k[row(0, 1, (layout.tileCount - 1) * layout.tileVolume + offset) * headDim + 1] = T(lastTileComponent)
            }
        }
    }

    /// Checks large finite inputs on `backend` against the float64 reference (docs/SEMANTICS.md).
    ///
    /// Forward: every row's output (relative error over the rows that attend something) and lse — relative
    /// to max(1, |reference|), and ±∞ exactly where the reference's lse passes the fp32 range — are
    /// compared; rows that attend nothing must be 0 / −∞.
    ///
    /// Backward (`backward`): the backend's forward, then its backward, against the reference backward with
    /// L recomputed from the scores, given the backend's output: dq, dk and dv, relative error per (batch,
    /// head), the largest shown. The rows whose lse fp32 cannot carry (±∞, |lse| ≥ 32768) are those both
    /// backends redo in float64. `badEmptyRows` counts gradient rows holding NaN (none may).
    public static func runLargeInputs(
        _ c: AttentionProblem, backward: Bool, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        switch c.dtype {
        case .float16: return try runLargeInputs(c, backward: backward, as: Float16.self, on: backend, seed: seed)
        default: return try runLargeInputs(c, backward: backward, as: BFloat16.self, on: backend, seed: seed)
        }
    }

    static func runLargeInputs<T: StorageScalar>(
        _ c: AttentionProblem, backward: Bool, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 4, seed: seed)
        var (q, k, v) = (inputs[0], inputs[1], inputs[2])
        scaleLargeRows(q: &q, k: &k, v: &v, plan: plan, headDim: c.headDim, values: !backward)
        let forward = try attention.forward(q: q, k: k, v: v, on: backend)
        func doubles(_ values: [T]) -> [Double] { values.map { Double($0.floatValue) } }
        let s = plan.layout.sequenceLength
        if !backward {
            let reference = try ReferenceAttention.forward(
                q: q, k: k, v: v, batch: c.batch, headDim: c.headDim, plan: plan)
            // Rows that attend nothing must be 0 / −∞ (counted by `compare`); the errors are per (batch,
            // head), so the heads of values near 3e38 do not hide the others.
            let empty = compare(
                c, output: doubles(forward.output), lse: forward.lse, reference: reference.output,
                referenceLSE: reference.lse)
            let outputs = doubles(forward.output)
            let headErrors = headErrors(outputs, reference: reference.output, headDim: c.headDim, sequenceLength: s) {
                reference.lse[$0] == -.infinity
            }
            let outputError = headErrors.max() ?? 0
            // The row farthest from the reference (‖o − reference‖), for the detail line.
            var worstRow = 0, worstDistance = -1.0
            for row in 0..<(outputs.count / c.headDim) where reference.lse[row] != -.infinity {
                var distance = 0.0
                for index in (row * c.headDim)..<((row + 1) * c.headDim) {
                    let e = outputs[index] - reference.output[index]
                    distance += e.isNaN ? .infinity : e * e
                }
                if distance > worstDistance { (worstRow, worstDistance) = (row, distance) }
            }
            var lseError = 0.0
            var worstLSERow = 0
            for (row, expected) in reference.lse.enumerated() where expected != -.infinity {
                let rounded = Float(expected)   // ±∞ where the reference passes the fp32 range
                let error: Double
                if rounded.isInfinite || forward.lse[row].isInfinite {
                    error = forward.lse[row] == rounded ? 0 : .infinity
                } else {
                    error = abs(Double(forward.lse[row]) - expected) / max(1, abs(expected))
                }
                if !(error <= lseError) { worstLSERow = row }
                lseError = max(lseError, error.isNaN ? .infinity : error)
            }
            var outcome = Outcome(
                name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: s, outputError: outputError,
                lseError: lseError, badEmptyRows: empty.badEmptyRows, tolerance: tolerance(c.dtype))
            outcome.detail = "output error per (batch, head): "
                + headErrors.enumerated().map { "b\($0.offset / plan.heads) h\($0.offset % plan.heads) \(Float($0.element))" }
                .joined(separator: ", ")
                + "; worst output row: \(rowName(worstRow, plan: plan)), distance \(Float(worstDistance.squareRoot())), "
                + "lse \(forward.lse[worstRow]), reference \(reference.lse[worstRow])"
                + "; worst lse: \(rowName(worstLSERow, plan: plan)) \(forward.lse[worstLSERow]), reference "
                + "\(reference.lse[worstLSERow])"
            return outcome
        }

        let outputGradient = inputs[3]
        let gradients = try attention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: outputGradient, on: backend)
        let reference = try ReferenceAttention.backward(
            q: doubles(q), k: doubles(k), v: doubles(v), output: doubles(forward.output),
            outputGradient: doubles(outputGradient), batch: c.batch, headDim: c.headDim, plan: plan)
        var bad = 0
        var errors = [Double]()
        var nonFinite = [String]()   // the first few non-finite gradient rows, named
        for (name, gradient, expected) in [
            ("dq", gradients.dq, reference.dq), ("dk", gradients.dk, reference.dk), ("dv", gradients.dv, reference.dv),
        ] {
            let values = doubles(gradient)
            for row in 0..<(values.count / c.headDim) {
                let elements = values[(row * c.headDim)..<((row + 1) * c.headDim)]
                if elements.contains(where: \.isNaN) { bad += 1 }
                if nonFinite.count < 8, elements.contains(where: { !$0.isFinite }) {
                    let (batchHead, position) = row.quotientAndRemainder(dividingBy: s)
                    nonFinite.append(
                        "\(name) b\(batchHead / plan.heads) h\(batchHead % plan.heads) pos \(position) "
                            + "(lse \(forward.lse[row]), reference \(expected[row * c.headDim]))")
                }
            }
            errors.append(largestHeadError(values, reference: expected, headDim: c.headDim, sequenceLength: s) { _ in false })
        }
        var outcome = Outcome(
            name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: s,
            outputError: errors.contains { $0.isNaN } ? .infinity : errors.max() ?? .infinity, lseError: 0,
            badEmptyRows: bad, tolerance: tolerance(c.dtype))
        if !nonFinite.isEmpty { outcome.detail = "non-finite gradient rows: " + nonFinite.joined(separator: "; ") }
        return outcome
    }

    /// Row `row` of [B · H · S] by batch, head, position and (video rows) tile and offset.
    static func rowName(_ row: Int, plan: AttentionPlan) -> String {
        let s = plan.layout.sequenceLength
        let (batchHead, position) = row.quotientAndRemainder(dividingBy: s)
        let place = position < plan.layout.paddedVideoTokenCount
            ? "tile \(position / plan.layout.tileVolume) offset \(position % plan.layout.tileVolume)"
            : "text \(position - plan.layout.paddedVideoTokenCount)"
        return "b\(batchHead / plan.heads) h\(batchHead % plan.heads) pos \(position) (\(place))"
    }

    /// The largest, over (batch, head) pairs, of ‖values − reference‖ / ‖reference‖ over the rows of the
    /// pair that `skip` does not name (row indices into [B · H · S]). A NaN compared element counts as an
    /// infinite error; a pair whose reference is all 0 counts 0 if the values are too, else infinity.
    static func largestHeadError(
        _ values: [Double], reference: [Double], headDim: Int, sequenceLength: Int, skip: (Int) -> Bool
    ) -> Double {
        headErrors(values, reference: reference, headDim: headDim, sequenceLength: sequenceLength, skip: skip).max() ?? 0
    }

    /// ‖values − reference‖ / ‖reference‖ of each (batch, head) pair, as `largestHeadError` measures them.
    static func headErrors(
        _ values: [Double], reference: [Double], headDim: Int, sequenceLength: Int, skip: (Int) -> Bool
    ) -> [Double] {
        var errors = [Double]()
        for batchHead in 0..<(values.count / (headDim * sequenceLength)) {
            var difference = 0.0, norm = 0.0
            for row in (batchHead * sequenceLength)..<((batchHead + 1) * sequenceLength) where !skip(row) {
                for index in (row * headDim)..<((row + 1) * headDim) {
                    let e = values[index] - reference[index]
                    difference += e.isNaN ? .infinity : e * e
                    norm += reference[index] * reference[index]
                }
            }
            let error = norm == 0 ? (difference == 0 ? 0 : .infinity) : (difference / norm).squareRoot()
            errors.append(error.isNaN ? .infinity : error)
        }
        return errors
    }
}
