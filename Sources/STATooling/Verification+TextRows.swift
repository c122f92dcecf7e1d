import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

extension Verification {
    /// A GPU case whose batch rows have their own valid text lengths (`textValid[b]` for row b), passed to
    /// the kernels as a device array: one launch, one compiled kernel for every length.
    public struct TextRowsCase: Sendable {
        public let problem: AttentionProblem
        public let textValid: [Int]

        /// The table's name: the problem's, with the per-row lengths.
        public var name: String { "\(problem.name) rows \(textValid.map(String.init).joined(separator: ","))" }
    }

    /// Per-row text cases: lengths 77 and 256 of 256 (prompts of a batch) on a padded canvas with two
    /// windows, and 0 and 50 of 64 (a row without valid text), each in bf16 and fp16 at head dims 64, 128.
    public static func textRowsCases() throws -> [TextRowsCase] {
        let geometries: [(String, STALayout, [Window], [Int])] = [
            ("3D 10x16x20 tile 4x8x8 (holes) text 256 w1x1x1,3x3x3",
             try STALayout(canvas: [10, 16, 20], tile: [4, 8, 8], textCount: 256),
             [Window(tiles: [1, 1, 1]), Window(tiles: [3, 3, 3])], [77, 256]),
            ("3D 12x16x24 tile 6x8x8 text 64 w1x3x3",
             try STALayout(canvas: [12, 16, 24], tile: [6, 8, 8], textCount: 64), [Window(tiles: [1, 3, 3])], [0, 50]),
        ]
        var cases = [TextRowsCase]()
        for (name, layout, windows, textValid) in geometries {
            for dtype in [DType.bfloat16, .float16] {
                for headDim in [64, 128] {
                    let problem = AttentionProblem(
                        name: name, layout: layout, headWindows: windows, batch: textValid.count, headDim: headDim,
                        dtype: dtype)
                    cases.append(TextRowsCase(problem: problem, textValid: textValid))
                }
            }
        }
        return cases
    }

    /// Runs one per-row text case on `gpu` (forward, or forward then backward) and compares batch row b
    /// with the float64 reference of the plan whose valid text length is `textValid[b]`. Outputs and
    /// gradients are poisoned first; `badEmptyRows` counts rows that attend nothing (holes, padding text)
    /// whose output is not 0 / −∞, or, for the backward, whose dq, dk or dv is not exactly 0.
    public static func runTextRows(_ c: TextRowsCase, backward: Bool, on gpu: CUDABackend, seed: UInt64) throws -> Outcome {
        switch c.problem.dtype {
        case .float16: return try runTextRows(c, as: Float16.self, backward: backward, on: gpu, seed: seed)
        default: return try runTextRows(c, as: BFloat16.self, backward: backward, on: gpu, seed: seed)
        }
    }

    static func runTextRows<T: StorageScalar>(
        _ c: TextRowsCase, as: T.Type, backward: Bool, on gpu: CUDABackend, seed: UInt64
    ) throws -> Outcome {
        let problem = c.problem
        let plan = try problem.plan()
        let (batch, headDim) = (problem.batch, problem.headDim)
        let rowPositions = plan.heads * plan.layout.sequenceLength
        let rowElements = rowPositions * headDim
        var random = RandomInputs(seed: seed)
        let q: [T] = random.values(batch * rowElements)
        let k: [T] = random.values(batch * rowElements)
        let v: [T] = random.values(batch * rowElements)
        let outputGradient: [T] = random.values(batch * rowElements)
        // One batch through the engine: the lengths go to the kernels as one device array.
        let attention = try SlidingTileAttention(plan: plan, batch: batch, headDim: headDim)
        let (output, lse) = try attention.forward(q: q, k: k, v: v, textValid: c.textValid, on: .cuda(gpu))
        var gradients: [[T]] = []
        if backward {
            let result = try attention.backward(
                q: q, k: k, v: v, output: output, lse: lse, outputGradient: outputGradient, textValid: c.textValid,
                on: .cuda(gpu))
            gradients = [result.dq, result.dk, result.dv]
        }

        func row<U>(_ values: [U], _ b: Int, _ length: Int) -> [U] { Array(values[(b * length)..<((b + 1) * length)]) }
        var difference = 0.0, norm = 0.0, lseError = 0.0, worst = 0.0
        var badEmptyRows = 0
        for b in 0..<batch {
            let rowPlan = try AttentionPlan(
                layout: STALayout(
                    canvas: plan.layout.canvas.extents, tile: plan.layout.tile.extents,
                    textCount: plan.layout.text.count, textValid: c.textValid[b]),
                headWindows: problem.headWindows)
            let reference = try ReferenceAttention.forward(
                q: row(q, b, rowElements), k: row(k, b, rowElements), v: row(v, b, rowElements), batch: 1,
                headDim: headDim, plan: rowPlan)
            let rowOutput = row(output, b, rowElements), rowLSE = row(lse, b, rowPositions)
            let empty = reference.lse.map { $0 == -.infinity }
            if !backward {
                for position in 0..<rowPositions {
                    let range = (position * headDim)..<((position + 1) * headDim)
                    if empty[position] {
                        if rowLSE[position] != -.infinity || rowOutput[range].contains(where: { $0.floatValue != 0 }) {
                            badEmptyRows += 1
                        }
                        continue
                    }
                    for i in range {
                        let d = Double(rowOutput[i].floatValue) - reference.output[i]
                        difference += d.isNaN ? .infinity : d * d
                        norm += reference.output[i] * reference.output[i]
                    }
                    let e = abs(Double(rowLSE[position]) - reference.lse[position])
                    lseError = max(lseError, e.isNaN ? .infinity : e)
                }
                continue
            }
            func referenceGradients(output: [T]) throws -> ReferenceAttention.Gradients {
                try ReferenceAttention.backward(
                    q: row(q, b, rowElements), k: row(k, b, rowElements), v: row(v, b, rowElements), output: output,
                    lse: rowLSE, outputGradient: row(outputGradient, b, rowElements), batch: 1, headDim: headDim,
                    plan: rowPlan)
            }
            let rowGradients = gradients.map { row($0, b, rowElements) }
            let errors = try gradientErrors(
                rowGradients, try referenceGradients(output: rowOutput), tolerance: tolerance(problem.dtype),
                measure: gradientError,
                withoutDelta: { try referenceGradients(output: [T](repeating: T(0 as Float), count: rowOutput.count)) })
            for (gradient, error) in zip(rowGradients, errors) {
                let values = gradient.map { Double($0.floatValue) }
                worst = max(worst, error.isNaN ? .infinity : error)
                // Holes and padding text attend nothing and nothing attends them: all three gradients are 0.
                for position in 0..<rowPositions where empty[position] {
                    if values[(position * headDim)..<((position + 1) * headDim)].contains(where: { $0 != 0 || $0.isNaN }) {
                        badEmptyRows += 1
                    }
                }
            }
        }
        return Outcome(
            name: c.name, dtype: problem.dtype, headDim: headDim, sequenceLength: plan.layout.sequenceLength,
            outputError: backward ? worst : (difference / norm).squareRoot(), lseError: lseError,
            badEmptyRows: badEmptyRows, tolerance: tolerance(problem.dtype))
    }
}
