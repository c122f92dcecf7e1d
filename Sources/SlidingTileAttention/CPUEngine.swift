import STACPUKernels
import STAGeometry
import STATensors

/// The CPU side of the package: forward and backward on host memory of any storage type the CPU kernel
/// takes, with the checks and error text every front end shares (the C interface's `sta_forward_cpu` and
/// `sta_backward_cpu`, and `SlidingTileAttention` on `.cpu`).
public enum CPUEngine {
    /// The forward pass on host memory. q, k, v, output: [batch, heads, S, headDim] of `dtype` (f32, f16
    /// or bf16) aligned to the element size; lse: [batch, heads, S] floats. `scale` nil or 0 means
    /// 1/√headDim; `textValid` nil or one length per batch row; `threads` nil means every core. Blocks
    /// until done; writes nothing when a check fails. Cost: the plan's effective FLOPs over `threads` cores.
    public static func forward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, output: UnsafeMutableRawPointer,
        lse: UnsafeMutablePointer<Float>, scale: Double?, textValid: [Int]? = nil, threads: Int?
    ) throws(AttentionError) {
        let (shape, scale) = try check(
            plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .forward, scale: scale,
            textValid: textValid, threads: threads)
        func run<T: StorageScalar>(_: T.Type) throws(AttentionError) {
            let n = shape.elementCount
            try cpu { () throws(CPUAttentionError) in
                try CPUAttention.forward(
                    plan: plan, batch: batch, headDim: headDim, q: buffer(q, T.self, n), k: buffer(k, T.self, n),
                    v: buffer(v, T.self, n), output: mutableBuffer(output, T.self, n),
                    lse: UnsafeMutableBufferPointer(start: lse, count: shape.rowCount), scale: scale,
                    textValid: textValid, threads: threads)
            }
        }
        switch dtype {
        case .float16: try run(Float16.self)
        case .bfloat16: try run(BFloat16.self)
        default: try run(Float.self)
        }
    }

    /// The backward pass on host memory: dq, dk and dv ([batch, heads, S, headDim] of `dtype`, like q)
    /// from q, k, v, the forward's output and lse, and the output's gradient. Accumulates in fp32 and
    /// rounds once; rows that attend nothing get 0. Arguments as in `forward`. Blocks until done.
    /// Cost: 7/2 × the plan's effective FLOPs over `threads` cores, plus 3 · B · H · S · D floats of
    /// scratch for half-precision dtypes.
    public static func backward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, output: UnsafeRawPointer,
        lse: UnsafePointer<Float>, outputGradient: UnsafeRawPointer,
        dq: UnsafeMutableRawPointer, dk: UnsafeMutableRawPointer, dv: UnsafeMutableRawPointer,
        scale: Double?, textValid: [Int]? = nil, threads: Int?
    ) throws(AttentionError) {
        let (shape, scale) = try check(
            plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .backward, scale: scale,
            textValid: textValid, threads: threads)
        let n = shape.elementCount
        func run<T: StorageScalar>(_: T.Type) throws(AttentionError) {
            // Gradients in fp32: written in place for f32, rounded into the caller's memory otherwise.
            let wide = T.self == Float.self
                ? [dq, dk, dv].map { mutableBuffer($0, Float.self, n) }
                : (0..<3).map { _ in UnsafeMutableBufferPointer<Float>.allocate(capacity: n) }
            defer { if T.self != Float.self { wide.forEach { $0.deallocate() } } }
            try cpu { () throws(CPUAttentionError) in
                try CPUAttention.backward(
                    plan: plan, batch: batch, headDim: headDim, q: buffer(q, T.self, n), k: buffer(k, T.self, n),
                    v: buffer(v, T.self, n), output: buffer(output, T.self, n),
                    lse: UnsafeBufferPointer(start: lse, count: shape.rowCount),
                    outputGradient: buffer(outputGradient, T.self, n), dq: wide[0], dk: wide[1], dv: wide[2],
                    scale: scale, textValid: textValid, threads: threads)
            }
            guard T.self != Float.self else { return }
            for (source, target) in zip(wide, [dq, dk, dv]) {
                let narrow = mutableBuffer(target, T.self, n)
                for i in 0..<n { narrow[i] = T(source[i]) }
            }
        }
        switch dtype {
        case .float16: try run(Float16.self)
        case .bfloat16: try run(BFloat16.self)
        default: try run(Float.self)
        }
    }

    /// The checks both directions share: shape, kernel capability (dtype), scale, valid text lengths,
    /// thread count. Returns the shape and the scale to run with.
    static func check(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType, direction: AttentionDirection, scale: Double?,
        textValid: [Int]?, threads: Int?
    ) throws(AttentionError) -> (AttentionShape, Float) {
        let shape = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: direction)
        _ = try KernelSelection.choose(.cpu, call, on: .cpu)
        if let threads, threads < 1 {
            throw .invalidArgument("threads is \(threads); give a positive count, or none (0) for every core")
        }
        let scale = try AttentionScale.resolve(scale, headDim: headDim)
        try TextValidLengths.check(textValid, batch: batch, layout: plan.layout)
        return (shape, scale)
    }

    private static func buffer<T>(_ pointer: UnsafeRawPointer, _: T.Type, _ count: Int) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: T.self), count: count)
    }

    private static func mutableBuffer<T>(_ pointer: UnsafeMutableRawPointer, _: T.Type, _ count: Int) -> UnsafeMutableBufferPointer<T> {
        UnsafeMutableBufferPointer(start: pointer.assumingMemoryBound(to: T.self), count: count)
    }

    /// `body`, with the CPU kernel's refusal turned into `AttentionError.cpu`.
    private static func cpu(_ body: () throws(CPUAttentionError) -> Void) throws(AttentionError) {
        do throws(CPUAttentionError) {
            try body()
        } catch {
            throw AttentionError(.cpu, error.description)
        }
    }
}
