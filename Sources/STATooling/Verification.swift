import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

/// Checks a backend against the float64 reference (spec §4) on fresh random inputs, output poisoned.
public enum Verification {
    /// The outcome of one case.
    public struct Outcome: Sendable {
        public let name: String
        public let dtype: DType
        public let headDim: Int
        public let sequenceLength: Int
        /// ‖out − ref‖ / ‖ref‖ over rows that attend something (NaN anywhere makes it infinite).
        public let outputError: Double
        /// Largest |lse − ref| over rows that attend something.
        public let lseError: Double
        /// Rows that attend nothing but were not written as 0 / −∞.
        public let badEmptyRows: Int
        public let tolerance: Double
        /// More than the table row holds, where a check has it (the large-input checks: the error of each
        /// (batch, head) pair, or the first non-finite gradient rows); `sta verify` prints it under the case.
        public var detail: String? = nil

        public var passed: Bool { outputError < tolerance && lseError < 1e-3 && badEmptyRows == 0 }
    }

    /// ‖out − ref‖ / ‖ref‖ bound of spec §4 for a storage type.
    public static func tolerance(_ dtype: DType) -> Double {
        switch dtype {
        case .float16: return 3e-3
        case .bfloat16: return 1e-2
        default: return 1e-4
        }
    }

    /// The GPU matrix: 1D/2D/3D, padded canvases, text with padding, per-head windows, batch > 1, 3D
    /// windows clamped at the borders of every axis, more than one text query block, a softmax scale
    /// other than 1/√D; each geometry in bf16 and fp16 at head dims 64 and 128.
    public static func gpuCases() throws -> [AttentionProblem] {
        let geometries: [(String, STALayout, String, Int, Float?)] = [
            ("1D 1000 tile 64 (holes) w5", try STALayout(canvas: [1000], tile: [64]), "5", 2, nil),
            ("2D 48x40 tile 8x16 (holes) w3x1,full", try STALayout(canvas: [48, 40], tile: [8, 16]), "3x1,full", 1, nil),
            ("3D 12x16x24 tile 6x8x8 text 50/64 per-head",
             try STALayout(canvas: [12, 16, 24], tile: [6, 8, 8], textCount: 64, textValid: 50), "1x1x3,3x3x3,1x1x1", 1, nil),
            ("3D 10x20x20 tile 4x8x8 (holes) text 16 w1x3x1",
             try STALayout(canvas: [10, 20, 20], tile: [4, 8, 8], textCount: 16), "1x3x1*2", 2, nil),
            // Grid 5×4×4 with holes on every axis: every axis clamps a 3-tile window at both borders.
            ("3D 18x14x14 tile 4x4x4 (holes) clamped w3x3x3,3x3x1",
             try STALayout(canvas: [18, 14, 14], tile: [4, 4, 4]), "3x3x3,3x3x1", 1, nil),
            // 300 text tokens, 200 valid: several text query blocks, padding starting inside one.
            ("2D 32x48 tile 8x16 text 200/300 w3x1 scale 0.05",
             try STALayout(canvas: [32, 48], tile: [8, 16], textCount: 300, textValid: 200), "3x1*2", 1, 0.05),
        ]
        var cases = [AttentionProblem]()
        for (name, layout, windows, batch, scale) in geometries {
            let heads = windows.split(separator: ",").reduce(0) { count, entry in
                count + (entry.split(separator: "*").dropFirst().first.flatMap { Int($0) } ?? 1)
            }
            let headWindows = try ShapeSyntax.headWindows(windows, layout: layout, heads: heads)
            for dtype in [DType.bfloat16, .float16] {
                for headDim in [64, 128] {
                    cases.append(AttentionProblem(
                        name: name, layout: layout, headWindows: headWindows, batch: batch, headDim: headDim,
                        dtype: dtype, scale: scale))
                }
            }
        }
        return cases
    }

    /// What a check compares with the float64 reference.
    public enum Check: Sendable {
        /// The forward pass, every row (the matrix of small cases).
        case forward
        /// The forward pass of a layout too large to reference whole: `runSampled`.
        case sampledRows
        /// dq, dk and dv: `runBackward`.
        case backward
        /// dq, dk and dv of a layout too large to reference whole: `runSampledBackward`.
        case sampledBackward
    }

    /// Runs one case on `backend` with inputs drawn from `seed`, in the case's storage type.
    public static func run(
        _ testCase: AttentionProblem, _ check: Check = .forward, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        switch testCase.dtype {
        case .bfloat16: return try run(testCase, check, as: BFloat16.self, on: backend, seed: seed)
        case .float16: return try run(testCase, check, as: Float16.self, on: backend, seed: seed)
        default: return try run(testCase, check, as: Float.self, on: backend, seed: seed)
        }
    }

    static func run<T: StorageScalar>(
        _ c: AttentionProblem, _ check: Check, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        switch check {
        case .forward: return try run(c, as: T.self, on: backend, seed: seed)
        case .sampledRows: return try runSampled(c, as: T.self, on: backend, seed: seed)
        case .backward: return try runBackward(c, as: T.self, on: backend, seed: seed)
        case .sampledBackward: return try runSampledBackward(c, as: T.self, on: backend, seed: seed)
        }
    }

    static func run<T: StorageScalar>(_ c: AttentionProblem, as: T.Type, on backend: AttentionBackend, seed: UInt64) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 3, seed: seed)
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        let result = try attention.forward(q: q, k: k, v: v, scale: c.scale, on: backend)
        let reference = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: c.batch, headDim: c.headDim, plan: plan, scale: c.scale.map(Double.init))
        return compare(
            c, output: result.output.map { Double($0.floatValue) }, lse: result.lse,
            reference: reference.output, referenceLSE: reference.lse)
    }

    /// The backward pass of one case on `backend` (forward on the same backend first, as training does),
    /// dq, dk and dv compared with the float64 reference backward given the same output and lse. The
    /// outcome's `outputError` is the largest of the three relative errors; `lseError` is 0; `badEmptyRows`
    /// counts the rows of holes and padding text whose dq, dk or dv is not exactly 0 (once per gradient).
    ///
    /// dq and dk come from dS = P ∘ (dP − Δ), which cancels: see `cancellationFloor`.
    static func runBackward<T: StorageScalar>(
        _ c: AttentionProblem, as: T.Type, on backend: AttentionBackend, seed: UInt64
    ) throws -> Outcome {
        let (plan, attention, inputs) = try draw(c, as: T.self, tensors: 4, seed: seed)
        let (q, k, v, outputGradient) = (inputs[0], inputs[1], inputs[2], inputs[3])
        let forward = try attention.forward(q: q, k: k, v: v, scale: c.scale, on: backend)
        let gradients = try attention.backward(
            q: q, k: k, v: v, output: forward.output, lse: forward.lse, outputGradient: outputGradient,
            scale: c.scale, on: backend)
        func reference(output: [T]) throws -> ReferenceAttention.Gradients {
            try ReferenceAttention.backward(
                q: q, k: k, v: v, output: output, lse: forward.lse, outputGradient: outputGradient,
                batch: c.batch, headDim: c.headDim, plan: plan, scale: c.scale.map(Double.init))
        }
        let errors = try gradientErrors(
            [gradients.dq, gradients.dk, gradients.dv], try reference(output: forward.output),
            tolerance: tolerance(c.dtype), measure: gradientError,
            withoutDelta: { try reference(output: [T](repeating: T(0 as Float), count: q.count)) })
        return Outcome(
            name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: c.layout.sequenceLength,
            outputError: errors.contains { $0.isNaN } ? .infinity : errors.max() ?? .infinity, lseError: 0,
            badEmptyRows: nonZeroEmptyRows(c, [gradients.dq, gradients.dk, gradients.dv]), tolerance: tolerance(c.dtype))
    }

    /// The cancellation floor of the backward checks. dq and dk come from dS = P ∘ (dP − Δ), which
    /// cancels: a query that attends one key has dS = 0, so in a problem of such queries alone dq = dk = 0
    /// exactly and any rounding is an infinite relative error. Where dq or dk misses its tolerance, the
    /// checks measure it again against the larger of the reference's norm and a tenth of the norm of the
    /// same gradient without Δ (the reference run again with a zero output, hence Δ = 0: the size the
    /// rounding of dP − Δ scales with). Wherever rows attend several keys the reference's norm is the larger
    /// and the measure is spec §4's; a wrong gradient stays far outside the tolerance either way.
    static let cancellationFloor = 0.1

    /// The errors of dq, dk and dv (`gradients`, in that order) against `expected` by `measure`, which
    /// takes a gradient, its reference and a floor (nil: none); dq and dk that miss `tolerance` are
    /// measured again against the same gradients without Δ (`withoutDelta`, called only then): see
    /// `cancellationFloor`.
    static func gradientErrors<T>(
        _ gradients: [[T]], _ expected: ReferenceAttention.Gradients, tolerance: Double,
        measure: ([T], [Double], [Double]?) -> Double, withoutDelta: () throws -> ReferenceAttention.Gradients
    ) rethrows -> [Double] {
        var errors = zip(gradients, [expected.dq, expected.dk, expected.dv]).map { measure($0, $1, nil) }
        if errors[0] >= tolerance || errors[1] >= tolerance {
            let floor = try withoutDelta()
            errors[0] = measure(gradients[0], expected.dq, floor.dq)
            errors[1] = measure(gradients[1], expected.dk, floor.dk)
        }
        return errors
    }

    /// ‖output − reference‖ / max(‖reference‖, cancellationFloor · ‖floor‖): NaN anywhere gives NaN;
    /// 0 / 0 gives 0.
    static func gradientError<T: StorageScalar>(_ output: [T], _ reference: [Double], floor: [Double]?) -> Double {
        guard output.count == reference.count else { return .infinity }
        var difference = 0.0, norm = 0.0
        for (value, expected) in zip(output, reference) {
            let x = Double(value.floatValue)
            if x.isNaN || expected.isNaN { return .nan }
            difference += (x - expected) * (x - expected)
            norm += expected * expected
        }
        if let floor { norm = max(norm, floor.reduce(0) { $0 + $1 * $1 } * cancellationFloor * cancellationFloor) }
        if norm == 0 { return difference == 0 ? 0 : .infinity }
        return (difference / norm).squareRoot()
    }

    /// Rows of holes and padding text, over every (batch, head), that are not exactly 0 in each of
    /// `gradients` (poisoned rows left unwritten hold NaN, which counts). Cost: O(B · H · empty rows · D).
    static func nonZeroEmptyRows<T: StorageScalar>(_ c: AttentionProblem, _ gradients: [[T]]) -> Int {
        let real = ReferenceAttention.realQueryMask(layout: c.layout)
        let length = c.layout.sequenceLength
        var bad = 0
        for gradient in gradients {
            for slice in 0..<(c.batch * c.heads) {
                for row in 0..<length where !real[row] {
                    let start = (slice * length + row) * c.headDim
                    if gradient[start..<(start + c.headDim)].contains(where: { $0.floatValue != 0 }) { bad += 1 }
                }
            }
        }
        return bad
    }

    /// The case's plan and attention, and `tensors` random [B, H, S, D] tensors drawn from `seed`.
    static func draw<T: StorageScalar>(
        _ c: AttentionProblem, as: T.Type, tensors: Int, seed: UInt64
    ) throws -> (AttentionPlan, SlidingTileAttention, [[T]]) {
        let plan = try AttentionPlan(layout: c.layout, headWindows: c.headWindows)
        let attention = try SlidingTileAttention(plan: plan, batch: c.batch, headDim: c.headDim)
        var random = RandomInputs(seed: seed)
        return (plan, attention, (0..<tensors).map { _ in random.values(attention.elementCount) })
    }

    static func compare(_ c: AttentionProblem, output: [Double], lse: [Float], reference: [Double], referenceLSE: [Double]) -> Outcome {
        var difference = 0.0, norm = 0.0, lseError = 0.0
        var badEmptyRows = 0
        for row in 0..<referenceLSE.count {
            let range = (row * c.headDim)..<((row + 1) * c.headDim)
            if referenceLSE[row] == -.infinity {
                if lse[row] != -.infinity || output[range].contains(where: { $0 != 0 }) { badEmptyRows += 1 }
                continue
            }
            for i in range {
                let d = output[i] - reference[i]
                difference += d.isNaN ? .infinity : d * d
                norm += reference[i] * reference[i]
            }
            let e = abs(Double(lse[row]) - referenceLSE[row])
            lseError = max(lseError, e.isNaN ? .infinity : e)
        }
        return Outcome(
            name: c.name, dtype: c.dtype, headDim: c.headDim, sequenceLength: c.layout.sequenceLength,
            outputError: (difference / norm).squareRoot(), lseError: lseError, badEmptyRows: badEmptyRows,
            tolerance: tolerance(c.dtype))
    }
}
