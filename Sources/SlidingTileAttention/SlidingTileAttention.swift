import CUDADriver
import STACPUKernels
import STACUDAKernels
import STAGeometry
import STATensors

/// Sliding tile attention over one plan: the single call a caller needs, on any backend.
///
/// Tensors are [B, H, S, D] contiguous with S = `plan.layout.sequenceLength` (video tokens in
/// tile-contiguous order, holes included, then text; use `STALayout.tile` to get there). The result's
/// `lse` is [B, H, S], natural log. Rows that attend nothing (holes, padding text) come back as 0 and −∞.
/// Hole and padding-text rows of k and v are never attended but must hold finite values (`tile` writes
/// zeros there): the Hopper kernel multiplies them by zero weights.
public struct SlidingTileAttention: Sendable {
    public let plan: AttentionPlan
    public let batch: Int
    public let headDim: Int

    /// Why a call was rejected before running.
    public struct InputError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(plan: AttentionPlan, batch: Int, headDim: Int) throws {
        guard batch >= 1 else { throw InputError(description: "batch is \(batch); it must be at least 1") }
        guard headDim >= 1 else { throw InputError(description: "head dim is \(headDim); it must be at least 1") }
        self.plan = plan
        self.batch = batch
        self.headDim = headDim
    }

    /// Elements of one of q, k, v or the output: B · H · S · D.
    public var elementCount: Int { batch * plan.heads * plan.layout.sequenceLength * headDim }
    /// Rows of the log-sum-exp: B · H · S.
    public var rowCount: Int { batch * plan.heads * plan.layout.sequenceLength }

    /// Runs the forward pass. `scale` defaults to 1/√D. Cost: effective FLOPs of the plan.
    public func forward<T: StorageScalar>(
        q: [T], k: [T], v: [T], scale: Float? = nil, on backend: AttentionBackend
    ) throws -> (output: [T], lse: [Float]) {
        for (name, tensor) in [("q", q), ("k", k), ("v", v)] where tensor.count != elementCount {
            throw InputError(
                description: "\(name) has \(tensor.count) elements; [B, H, S, D] = [\(batch), \(plan.heads), "
                    + "\(plan.layout.sequenceLength), \(headDim)] needs \(elementCount)")
        }
        let scale = scale ?? 1 / Float(headDim).squareRoot()
        switch backend {
        case .cpu(let threads):
            // Poisoned, so an element the kernel fails to write shows as NaN.
            var output = [T](repeating: T(.nan), count: elementCount)
            var lse = [Float](repeating: .nan, count: rowCount)
            try q.withUnsafeBufferPointer { q in
                try k.withUnsafeBufferPointer { k in
                    try v.withUnsafeBufferPointer { v in
                        try output.withUnsafeMutableBufferPointer { output in
                            try lse.withUnsafeMutableBufferPointer { lse in
                                try CPUAttention.forward(
                                    plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v,
                                    output: output, lse: lse, scale: scale, threads: threads)
                            }
                        }
                    }
                }
            }
            return (output, lse)
        case .cuda(let gpu):
            guard T.dtype == .bfloat16 || T.dtype == .float16 else {
                throw InputError(description: "the CUDA kernels take bf16 or fp16 tensors, not \(T.dtype); convert first or use the CPU")
            }
            let kernel = try gpu.forwardKernel(plan: plan, headDim: headDim, dtype: T.dtype)
            let (dq, dk, dv) = (try gpu.upload(q), try gpu.upload(k), try gpu.upload(v))
            let output = try DeviceBuffer(context: gpu.context, byteCount: elementCount * 2)
            let lse = try DeviceBuffer(context: gpu.context, byteCount: rowCount * 4)
            // Poisoned (all-ones bytes are NaN in bf16, fp16 and fp32), so an unwritten element shows.
            try output.fill(byte: 0xFF)
            try lse.fill(byte: 0xFF)
            try kernel.launch(
                q: dq, k: dk, v: dv, output: output, lse: lse, batch: batch, scale: scale, textValid: nil, stream: nil)
            try gpu.context.synchronize()
            return (try gpu.download(output, count: elementCount, as: T.self), try gpu.download(lse, count: rowCount, as: Float.self))
        }
    }
}

extension SlidingTileAttention {
    /// Gradients of the forward pass for fine-tuning: given the inputs, the forward's `output` and `lse`
    /// and the gradient of the loss with respect to the output, returns dq, dk and dv ([B, H, S, D],
    /// fp32, accumulated in fp32; the GPU kernels round them to T first). Rows that attend nothing get
    /// dq = 0; keys nothing attends get dk = dv = 0. On a GPU the portable backward kernels run (sm_80 and
    /// newer, bf16 or fp16).
    /// Cost: about 2.5 × the forward's effective FLOPs.
    public func backward<T: StorageScalar>(
        q: [T], k: [T], v: [T], output: [T], lse: [Float], outputGradient: [T], scale: Float? = nil,
        on backend: AttentionBackend
    ) throws -> (dq: [Float], dk: [Float], dv: [Float]) {
        let scale = scale ?? 1 / Float(headDim).squareRoot()
        switch backend {
        case .cpu(let threads):
            return try CPUAttention.backward(
                plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, output: output, lse: lse,
                outputGradient: outputGradient, scale: scale, threads: threads)
        case .cuda(let gpu):
            guard T.dtype == .bfloat16 || T.dtype == .float16 else {
                throw InputError(description: "the CUDA kernels take bf16 or fp16 tensors, not \(T.dtype); convert first or use the CPU")
            }
            let kernel = try gpu.backwardKernel(plan: plan, headDim: headDim, dtype: T.dtype)
            let inputs = try [q, k, v, output, outputGradient].map { try gpu.upload($0) }
            let deviceLSE = try gpu.upload(lse)
            let gradients = try (0..<3).map { _ in try DeviceBuffer(context: gpu.context, byteCount: elementCount * 2) }
            let workspace = try DeviceBuffer(context: gpu.context, byteCount: kernel.workspaceByteCount(batch: batch))
            // Poisoned (all-ones bytes are NaN), so an unwritten element shows.
            for buffer in gradients { try buffer.fill(byte: 0xFF) }
            try kernel.launch(
                q: inputs[0], k: inputs[1], v: inputs[2], output: inputs[3], lse: deviceLSE, outputGradient: inputs[4],
                dq: gradients[0], dk: gradients[1], dv: gradients[2], batch: batch, scale: scale, textValid: nil,
                workspace: workspace, stream: nil)
            try gpu.context.synchronize()
            let (dq, dk, dv) = try (
                gpu.download(gradients[0], count: elementCount, as: T.self).map(\.floatValue),
                gpu.download(gradients[1], count: elementCount, as: T.self).map(\.floatValue),
                gpu.download(gradients[2], count: elementCount, as: T.self).map(\.floatValue))
            return (dq, dk, dv)
        }
    }
}
