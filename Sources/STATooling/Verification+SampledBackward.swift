import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

extension Verification {
    /// What a sampled backward check measured: the relative error ‖g − ref‖ / ‖ref‖ of each gradient over
    /// its sampled real rows of every (batch, head) (infinite when any real row of that gradient, sampled or
    /// not, holds NaN or ±∞; dq and dk against `cancellationFloor` where it applies), and the rows of holes and padding text whose dq, dk or dv is not exactly 0.
    public struct SampledGradientErrors: Sendable {
        public let dq: Double, dk: Double, dv: Double
        /// Rows that attend nothing and that nothing attends, counted once per gradient that is not 0 there.
        public let badEmptyRows: Int
        /// The largest of the three relative errors.
        public var worst: Double { [dq, dk, dv].max()! }
    }

    /// Checks the backward of a backend on a layout too large to reference whole (the benchmark layouts).
    /// The backend runs the forward, then the backward on the whole problem (its gradients poisoned with
    /// NaN first); the float64 reference then gives dq on `sampledRows(of:)` as query rows and dk, dv on
    /// the same rows as key rows — interior, border and hole tiles, text on both sides of every 64-row
    /// boundary and padding text — of every (batch, head), from the backend's own output and lse, as the
    /// whole-problem backward check does. Every row of a hole or of padding text must be exactly 0 in all
    /// three gradients; every other row must be finite (an unwritten row keeps its NaN).
    ///
    /// The outcome's `outputError` is the largest of the three relative errors, `lseError` is 0 and
    /// `badEmptyRows` the count of non-zero empty rows. Reached through `run(_:.sampledBackward:on:seed:)`.
    ///
    /// Cost: one forward and one backward pass, a scan of the three gradients, and the reference on the
    /// sampled rows: for a key row, 10 · D flops per query that attends it (every real query, for a text
    /// key). The inputs stay in their storage type on the host (no `Double` copies).
    static func runSampledBackward<T: StorageScalar>(
        _ c: AttentionProblem, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 4, seed: seed)
        let (q, k, v, outputGradient) = (inputs[0], inputs[1], inputs[2], inputs[3])
        var random = RandomInputs(seed: ~seed)
        let rows = sampledRows(of: c.layout, random: &random)
        let forward = try attention.forward(q: q, k: k, v: v, scale: c.scale, on: backend)
        let gradients = try attention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: outputGradient,
            scale: c.scale, on: backend)
        let errors = try compareSampledBackward(
            c, plan: plan, q: q, k: k, v: v, output: forward.output, lse: forward.lse,
            outputGradient: outputGradient, gradients: gradients, rows: rows)
        return Outcome(
            name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: c.layout.sequenceLength,
            outputError: errors.worst, lseError: 0, badEmptyRows: errors.badEmptyRows, tolerance: tolerance(c.dtype))
    }

    /// Compares a backend's gradients with the float64 reference on `rows` (query rows for dq, key rows for
    /// dk and dv) and checks every empty row and the finiteness of every real row: see
    /// `SampledGradientErrors`.
    ///
    /// Cost: the sampled reference, plus one pass over the three gradients.
    static func compareSampledBackward<T: StorageScalar>(
        _ c: AttentionProblem, plan: AttentionPlan, q: [T], k: [T], v: [T], output: [T], lse: [Float],
        outputGradient: [T], gradients: (dq: [T], dk: [T], dv: [T]), rows: [Int]
    ) throws -> SampledGradientErrors {
        func reference(output: [T]) throws -> ReferenceAttention.Gradients {
            try ReferenceAttention.sampledBackward(
                q: q, k: k, v: v, output: output, lse: lse, outputGradient: outputGradient, batch: c.batch,
                headDim: c.headDim, plan: plan, scale: c.scale.map(Double.init), queryRows: rows, keyRows: rows)
        }
        let expected = try reference(output: output)
        let length = c.layout.sequenceLength
        let d = c.headDim
        let real = ReferenceAttention.realQueryMask(layout: c.layout)
        // NaN compares unequal to 0: an unwritten empty row counts too.
        let badEmptyRows = nonZeroEmptyRows(c, [gradients.dq, gradients.dk, gradients.dv])
        /// The relative error on the sampled real rows, against the larger of the reference's norm and
        /// `cancellationFloor` times `floor`'s; infinite when a real row anywhere is not finite.
        func error(_ gradient: [T], _ expected: [Double], floor: [Double]?) -> Double {
            for slice in 0..<(c.batch * c.heads) {
                for row in 0..<length where real[row] {
                    let start = (slice * length + row) * d
                    if gradient[start..<(start + d)].contains(where: { !$0.floatValue.isFinite }) { return .infinity }
                }
            }
            var difference = 0.0, norm = 0.0, floorNorm = 0.0
            for slice in 0..<(c.batch * c.heads) {
                for (index, row) in rows.enumerated() where real[row] {
                    let start = (slice * length + row) * d, expectedStart = (slice * rows.count + index) * d
                    for i in 0..<d {
                        let r = expected[expectedStart + i]
                        let e = Double(gradient[start + i].floatValue) - r
                        difference += e * e
                        norm += r * r
                        if let floor { floorNorm += floor[expectedStart + i] * floor[expectedStart + i] }
                    }
                }
            }
            if difference == 0 { return 0 }
            let error = (difference / max(norm, floorNorm * cancellationFloor * cancellationFloor)).squareRoot()
            return error.isNaN ? .infinity : error
        }
        let errors = try gradientErrors(
            [gradients.dq, gradients.dk, gradients.dv], expected, tolerance: tolerance(c.dtype), measure: error,
            withoutDelta: { try reference(output: [T](repeating: T(0 as Float), count: output.count)) })
        return SampledGradientErrors(dq: errors[0], dk: errors[1], dv: errors[2], badEmptyRows: badEmptyRows)
    }
}
