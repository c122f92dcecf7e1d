import CUDADriver
import STACUDAKernels
import STAGeometry
import STATensors

extension CUDAEngine {
    /// Queues the forward pass on `stream` (nil: the legacy default stream) over device buffers and
    /// returns the kernel that runs it.
    ///
    /// q, k, v and output are [batch, plan.heads, S, headDim] in `dtype` (bf16 or f16), lse [batch,
    /// plan.heads, S] float32; all on one device (q's). `textValid` is nil (the plan's valid text length
    /// for every row) or `batch` Int32 lengths on that device. `scale` nil means 1/√headDim.
    /// Throws `invalidArgument` for a call no kernel takes (see `KernelSelection`), `cuda` for a device
    /// that cannot run it or a compile, load or launch failure. Rows the fast kernel leaves non-finite
    /// although they attend something (an fp32 overflow of the scores or of the P·V sum, or NaN inputs) are
    /// then recomputed in float64 by `STAExactRowsKernel` on the same stream. Cost: the kernel's, queued,
    /// plus one read of output and lse; one NVRTC compile (seconds) the first time a (plan, head dim, dtype,
    /// kernel) is seen on a machine.
    @discardableResult
    public func forward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        scale: Float? = nil, textValid: DeviceBuffer? = nil, stream: CUDAStream? = nil,
        kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> AttentionKernel {
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .forward)
        let context = q.context
        let (kernel, scale) = try prepare(call, scale: scale, textValid: textValid, context: context, preference: preference)
        let compiled = try forwardKernel(kernel, for: call, context: context)
        let lengths = try self.textValid(textValid, plan: plan, kernelPlan: compiled.plan, batch: batch, context: context)
        do throws(STAKernelError) {
            try compiled.launch(
                q: q, k: k, v: v, output: output, lse: lse, batch: batch, scale: scale, textValid: lengths, stream: stream)
        } catch {
            throw AttentionError(error, prefix: "launch of the \(kernel) forward kernel")
        }
        // Rows an fp32 overflow left non-finite, recomputed in float64 (docs/SEMANTICS.md).
        let exact = try exactRowsKernel(for: call, context: context)
        let exactLengths = try self.textValid(textValid, plan: plan, kernelPlan: exact.plan, batch: batch, context: context)
        do throws(STAKernelError) {
            try exact.launchForward(
                q: q, k: k, v: v, output: output, lse: lse, batch: batch, scale: scale, textValid: exactLengths,
                stream: stream)
        } catch {
            throw AttentionError(error, prefix: "launch of the exact-rows forward kernel")
        }
        return kernel
    }

    /// `forward` over raw device addresses (CUdeviceptr) in device `device`'s primary context, as the C
    /// interface passes them: q, k, v, output 16-byte aligned, lse 4-byte aligned, none 0; `textValid` 0 or
    /// the address of `batch` Int32 lengths (4-byte aligned; its values are not checked on the host);
    /// `stream` a CUstream of that context or 0. `scale` 0 or nil means 1/√headDim. The caller keeps the
    /// memory alive until the stream has run the work. Everything that can be checked without the device
    /// is checked before the device is touched.
    @discardableResult
    public func forward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: UInt64, k: UInt64, v: UInt64, output: UInt64, lse: UInt64, scale: Double?, textValid: UInt64 = 0,
        stream: UInt64 = 0, device: Int, kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> AttentionKernel {
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .forward)
        let (shape, resolved, tensorBytes) = try checkAddresses(
            call, preference: preference, tensors: [("q", q), ("k", k), ("v", v), ("out", output)], lse: lse,
            textValid: textValid, device: device, scale: scale)
        let context = try self.context(device: device)
        let buffers = try DeviceAddress.borrow(
            [(q, tensorBytes), (k, tensorBytes), (v, tensorBytes), (output, tensorBytes), (lse, shape.rowCount * 4)],
            context: context)
        return try forward(
            plan: plan, batch: batch, headDim: headDim, dtype: dtype, q: buffers[0], k: buffers[1], v: buffers[2],
            output: buffers[3], lse: buffers[4], scale: resolved,
            textValid: try DeviceAddress.borrowOptional(textValid, byteCount: batch * 4, context: context),
            stream: try DeviceAddress.stream(stream, context: context), kernel: preference)
    }

    /// The forward pass on host arrays: uploads q, k, v to device `device`, runs, waits and downloads.
    /// The output and lse are poisoned (NaN) on the device first, so an element the kernel fails to write
    /// shows. `textValid` nil or one length per batch row in 0...text count. Cost: the kernel plus the
    /// copies (about 4 · B · H · S · D · 2 bytes over the bus).
    public func forward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int, q: [T], k: [T], v: [T], scale: Float? = nil,
        textValid: [Int]? = nil, device: Int = 0, kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> (output: [T], lse: [Float], kernel: AttentionKernel) {
        let shape = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
        try shape.check([("q", q.count), ("k", k.count), ("v", v.count)])
        try KernelSelection.checkCall(
            preference, AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, direction: .forward),
            onCUDA: true)
        try TextValidLengths.check(textValid, batch: batch, layout: plan.layout)
        let context = try self.context(device: device)
        return try driver {
            let inputs = try [q, k, v].map { try HostCopy.upload($0, context: context) }
            let output = try DeviceBuffer(context: context, byteCount: shape.elementCount * T.dtype.byteCount)
            let lse = try DeviceBuffer(context: context, byteCount: shape.rowCount * 4)
            // All-ones bytes are NaN in bf16, fp16 and fp32.
            try output.fill(byte: 0xFF)
            try lse.fill(byte: 0xFF)
            let lengths = try textValid.map { try DeviceBuffer(context: context, copying: $0.map { Int32($0) }) }
            let kernel = try forward(
                plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, q: inputs[0], k: inputs[1], v: inputs[2],
                output: output, lse: lse, scale: scale, textValid: lengths, stream: nil, kernel: preference)
            try context.synchronize()
            return (
                try HostCopy.download(output, count: shape.elementCount, as: T.self),
                try HostCopy.download(lse, count: shape.rowCount, as: Float.self), kernel)
        }
    }
}

/// Checks and wraps raw device addresses of the C interface.
enum DeviceAddress {
    /// Throws unless `address` is non-zero and a multiple of `alignment`.
    static func check(_ address: UInt64, _ name: String, alignment: Int) throws(AttentionError) {
        guard address != 0 else {
            throw .invalidArgument("\(name) is a NULL device address; pass tensor.data_ptr() of a CUDA tensor")
        }
        try checkOptional(address, name, alignment: alignment)
    }

    /// Throws unless `address` is 0 or a multiple of `alignment`.
    static func checkOptional(_ address: UInt64, _ name: String, alignment: Int) throws(AttentionError) {
        guard address % UInt64(alignment) == 0 else {
            throw .invalidArgument(
                "\(name) (0x\(String(address, radix: 16))) is not aligned to \(alignment) bytes; pass an aligned, contiguous tensor")
        }
    }

    /// Borrowed buffers over (address, bytes) pairs; nothing is allocated or freed.
    static func borrow(_ regions: [(UInt64, Int)], context: CUDAContext) throws(AttentionError) -> [DeviceBuffer] {
        try driver {
            try regions.map { region in
                try DeviceBuffer(borrowing: region.0, byteCount: region.1, context: context)
            }
        }
    }

    /// A borrowed buffer over `address`, or nil for 0.
    static func borrowOptional(_ address: UInt64, byteCount: Int, context: CUDAContext) throws(AttentionError) -> DeviceBuffer? {
        guard address != 0 else { return nil }
        return try borrow([(address, byteCount)], context: context)[0]
    }

    /// The caller's stream, or nil (the legacy default stream) for 0.
    static func stream(_ handle: UInt64, context: CUDAContext) throws(AttentionError) -> CUDAStream? {
        guard handle != 0 else { return nil }
        return try driver { try CUDAStream(borrowing: handle, context: context) }
    }
}

/// `body`'s result, with a driver error turned into `AttentionError.cuda`.
func driver<T>(_ body: () throws -> T) throws(AttentionError) -> T {
    do {
        return try body()
    } catch let error as AttentionError {
        throw error
    } catch let error as CUDAError {
        throw AttentionError(error)
    } catch let error as STAKernelError {
        throw AttentionError(error)
    } catch {
        throw .cuda("\(error)")
    }
}

/// Copies between host arrays of any storage type and device buffers.
enum HostCopy {
    /// A new buffer holding `values` (at least one byte, so its address is never 0).
    static func upload<T>(_ values: [T], context: CUDAContext) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(context: context, byteCount: max(1, values.count * MemoryLayout<T>.stride))
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        return buffer
    }

    /// The first `count` elements of `buffer` as `T`.
    static func download<T>(_ buffer: DeviceBuffer, count: Int, as: T.Type) throws -> [T] {
        try [T](unsafeUninitializedCapacity: count) { storage, initialized in
            try buffer.copy(to: UnsafeMutableRawBufferPointer(storage))
            initialized = count
        }
    }
}
