import SlidingTileAttention
import STAGeometry
import STAReference
import STATensors

/// The main job: one embedded STA problem run on the best backend and checked against the float64
/// reference on sampled query rows.
public enum Demonstration {
    /// What one demo run did.
    public struct Report: Sendable {
        public let problem: AttentionProblem
        public let plan: AttentionPlan
        public let backend: String
        public let milliseconds: Double
        public let sampledRows: Int
        public let outputError: Double
        public let lseError: Double
        public let tolerance: Double

        public var passed: Bool { outputError < tolerance && lseError < 1e-3 }
        public var gigaFLOPsPerSecond: Double {
            plan.effectiveFLOPs(batch: problem.batch, headDim: problem.headDim) / (milliseconds * 1e-3) / 1e9
        }
    }

    /// The embedded problem: a 12×32×48 latent video (18,432 tokens) in 6×8×8 tiles, 64 text tokens of
    /// which 48 are valid, 4 heads of dimension 64, window 1×3×3 tiles; bf16 on a GPU, f32 on a CPU.
    public static func problem(dtype: DType) throws -> AttentionProblem {
        let layout = try STALayout(canvas: [12, 32, 48], tile: [6, 8, 8], textCount: 64, textValid: 48)
        return AttentionProblem(
            name: "demo 1x3x3", layout: layout, headWindows: Array(repeating: Window(tiles: [1, 3, 3]), count: 4),
            batch: 1, headDim: 64, dtype: dtype)
    }

    /// Runs the demo on `backend`; the reference covers `sampledRows` random query rows of every head.
    public static func run(on backend: AttentionBackend, sampledRows: Int = 256, seed: UInt64 = 2026) throws -> Report {
        switch backend {
        case .cpu: return try run(as: Float.self, on: backend, sampledRows: sampledRows, seed: seed)
        case .cuda: return try run(as: BFloat16.self, on: backend, sampledRows: sampledRows, seed: seed)
        }
    }

    static func run<T: StorageScalar>(as: T.Type, on backend: AttentionBackend, sampledRows: Int, seed: UInt64) throws -> Report {
        let problem = try problem(dtype: T.dtype)
        let (plan, attention, inputs) = try Verification.draw(problem, as: T.self, tensors: 3, seed: seed)
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        _ = try attention.forward(q: q, k: k, v: v, on: backend)  // warm-up: kernel compile or load, page faults
        let start = MonotonicClock.now
        let result = try attention.forward(q: q, k: k, v: v, on: backend)
        let milliseconds = MonotonicClock.milliseconds(since: start)

        let real = ReferenceAttention.realQueryMask(layout: plan.layout)
        var random = RandomInputs(seed: ~seed)
        var rows = Set<Int>()
        while rows.count < min(sampledRows, real.filter { $0 }.count) {
            let row = Int(random.next() % UInt64(real.count))
            if real[row] { rows.insert(row) }
        }
        let sampled = rows.sorted()
        let reference = try ReferenceAttention.forward(
            q: q, k: k, v: v, batch: problem.batch, headDim: problem.headDim, plan: plan, queryRows: sampled)
        var mask = [Bool](repeating: false, count: plan.layout.sequenceLength)
        for row in sampled { mask[row] = true }
        let outputError = AttentionAccuracy.relativeError(
            result.output, reference: reference.output, rowLength: problem.headDim, rowMask: mask)
        let lseError = AttentionAccuracy.maxAbsoluteDifference(
            result.lse.map(Double.init), reference: reference.lse, rowMask: mask)
        return Report(
            problem: problem, plan: plan, backend: "\(backend)", milliseconds: milliseconds, sampledRows: sampled.count,
            outputError: outputError, lseError: lseError, tolerance: Verification.tolerance(T.dtype))
    }
}
