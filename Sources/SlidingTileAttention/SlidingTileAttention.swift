import STACPUKernels
import STAGeometry
import STATensors

/// Sliding tile attention over one plan: the single call a caller needs, on any backend.
///
/// Tensors are [B, H, S, D] contiguous with S = `plan.layout.sequenceLength` (video tokens in
/// tile-contiguous order, holes included, then text; use `STALayout.tile` to get there). The result's
/// `lse` is [B, H, S], natural log. Rows that attend nothing (holes, padding text) come back as 0 and −∞.
/// Hole and padding-text rows of k and v are never attended but must hold finite values (`tile` writes
/// zeros there): the Hopper kernel multiplies them by zero weights.
///
/// The CPU runs through `CPUEngine`, a GPU through `CUDAEngine`; both check their arguments and choose
/// their kernel with `KernelSelection`, so every front end refuses a call with the same message.
public struct SlidingTileAttention: Sendable {
    /// The layout and per-head windows.
    public let plan: AttentionPlan
    /// B: sequences per call.
    public let batch: Int
    /// D: the head dimension.
    public let headDim: Int

    /// Throws `invalidArgument` for a batch outside 1...65535 or a head dim outside 1...65536.
    public init(plan: AttentionPlan, batch: Int, headDim: Int) throws(AttentionError) {
        _ = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
        self.plan = plan
        self.batch = batch
        self.headDim = headDim
    }

    /// Elements of one of q, k, v or the output: B · H · S · D.
    public var elementCount: Int { batch * plan.heads * plan.layout.sequenceLength * headDim }
    /// Rows of the log-sum-exp: B · H · S.
    public var rowCount: Int { batch * plan.heads * plan.layout.sequenceLength }

    /// Runs the forward pass. `scale` nil means 1/√D (otherwise positive and finite); `textValid` nil
    /// means the plan's valid text length for every batch row. Cost: effective FLOPs of the plan.
    public func forward<T: StorageScalar>(
        q: [T], k: [T], v: [T], scale: Float? = nil, textValid: [Int]? = nil, on backend: AttentionBackend
    ) throws(AttentionError) -> (output: [T], lse: [Float]) {
        switch backend {
        case .cpu(let threads):
            let shape = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
            try shape.check([("q", q.count), ("k", k.count), ("v", v.count)])
            // Poisoned, so an element the kernel fails to write shows as NaN.
            var output = [T](repeating: T(.nan), count: elementCount)
            var lse = [Float](repeating: .nan, count: rowCount)
            try typed { try withHostPointers(q, k, v) { (q, k, v) in
                try output.withUnsafeMutableBytes { output in
                    try lse.withUnsafeMutableBufferPointer { lse in
                        try CPUEngine.forward(
                            plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, q: q, k: k, v: v,
                            output: output.baseAddress!, lse: lse.baseAddress!, scale: scale.map(Double.init),
                            textValid: textValid, threads: threads)
                    }
                }
            } }
            return (output, lse)
        case .cuda(let gpu):
            let result = try gpu.engine.forward(
                plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, scale: scale, textValid: textValid,
                device: gpu.ordinal, kernel: gpu.kernel)
            return (result.output, result.lse)
        }
    }

    /// Gradients of the forward pass for fine-tuning: given the inputs, the forward's `output` and `lse`
    /// and the gradient of the loss with respect to the output, returns dq, dk and dv ([B, H, S, D] in
    /// `T`, accumulated in fp32 and rounded once). Rows that attend nothing get dq = 0; keys nothing
    /// attends get dk = dv = 0. On a GPU the backend's kernel preference chooses the backward kernels
    /// (bf16 or fp16): automatic takes the Hopper kernels on sm_90 (dq not bit-reproducible), the
    /// portable ones elsewhere or when named (sm_80 and newer, deterministic). Cost: about 2.5 × the
    /// forward's effective FLOPs.
    public func backward<T: StorageScalar>(
        q: [T], k: [T], v: [T], output: [T], lse: [Float], outputGradient: [T], scale: Float? = nil,
        textValid: [Int]? = nil, on backend: AttentionBackend
    ) throws(AttentionError) -> (dq: [T], dk: [T], dv: [T]) {
        switch backend {
        case .cpu(let threads):
            let shape = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
            try shape.check([
                ("q", q.count), ("k", k.count), ("v", v.count), ("output", output.count), ("lse", lse.count),
                ("outputGradient", outputGradient.count),
            ])
            var dq = [T](repeating: T(.nan), count: elementCount)
            var dk = dq, dv = dq
            try typed { try withHostPointers(q, k, v) { (q, k, v) in
                try withHostPointers(output, outputGradient, outputGradient) { (o, dO, _) in
                    try lse.withUnsafeBufferPointer { lse in
                        try dq.withUnsafeMutableBytes { dq in
                            try dk.withUnsafeMutableBytes { dk in
                                try dv.withUnsafeMutableBytes { dv in
                                    try CPUEngine.backward(
                                        plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, q: q, k: k, v: v,
                                        output: o, lse: lse.baseAddress!, outputGradient: dO, dq: dq.baseAddress!,
                                        dk: dk.baseAddress!, dv: dv.baseAddress!, scale: scale.map(Double.init),
                                        textValid: textValid, threads: threads)
                                }
                            }
                        }
                    }
                }
            } }
            return (dq, dk, dv)
        case .cuda(let gpu):
            return try gpu.engine.backward(
                plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, output: output, lse: lse,
                outputGradient: outputGradient, scale: scale, textValid: textValid, device: gpu.ordinal,
                kernel: gpu.kernel)
        }
    }
}

/// Runs `body` with the base addresses of three host arrays (none empty: their counts were checked).
private func withHostPointers<T>(
    _ a: [T], _ b: [T], _ c: [T],
    _ body: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer) throws -> Void
) throws {
    try a.withUnsafeBytes { a in
        try b.withUnsafeBytes { b in
            try c.withUnsafeBytes { c in
                try body(a.baseAddress!, b.baseAddress!, c.baseAddress!)
            }
        }
    }
}

/// `body`, whose only errors are `AttentionError`s thrown through untyped closures, with its error type
/// restored.
private func typed(_ body: () throws -> Void) throws(AttentionError) {
    do {
        try body()
    } catch let error as AttentionError {
        throw error
    } catch {
        throw AttentionError(.cpu, "\(error)")
    }
}
