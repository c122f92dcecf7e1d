import CUDADriver
import STACUDAKernels
import STAGeometry
import STATensors

extension CUDAEngine {
    /// Bytes of device workspace `backward` needs for a call of this shape (0 is a valid answer). Checks
    /// the call and chooses its kernel as `backward` would, opening device `device` if needed. The size
    /// depends on the kernel: the portable one needs LSE2 and Δ (8 bytes per row), the Hopper one also a
    /// float32 dq accumulator (about 4 · headDim bytes more per row); ask with the same `kernel`.
    public func backwardWorkspaceByteCount(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType, device: Int,
        kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> Int {
        _ = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .backward)
        try KernelSelection.checkCall(preference, call, onCUDA: true)
        let kernel = try KernelSelection.choose(preference, call, on: .cuda(properties(device: device)))
        return Self.backwardWorkspaceLayout(kernel: kernel, plan: plan, batch: batch, headDim: headDim).total
    }

    /// The backward workspace: the chosen backward kernel's part first (the portable kernel's LSE2 and Δ,
    /// the Hopper kernel's also its float32 dq accumulator), then from the next 256-byte boundary the
    /// exact-rows kernels' (`STAExactRowsKernel.backwardWorkspaceByteCount`).
    static func backwardWorkspaceLayout(
        kernel: AttentionKernel, plan: AttentionPlan, batch: Int, headDim: Int
    ) -> (kernels: Int, exactOffset: Int, total: Int) {
        let kernels = kernel == .hopper
            ? STABackwardHopperKernel.workspaceByteCount(plan: plan, batch: batch, headDim: headDim)
            : STABackwardKernel.workspaceByteCount(plan: plan, batch: batch)
        let exactOffset = (kernels + 255) / 256 * 256
        return (kernels, exactOffset, exactOffset + STAExactRowsKernel.backwardWorkspaceByteCount(plan: plan, batch: batch))
    }

    /// Queues the backward pass on `stream` (nil: the legacy default stream) over device buffers and
    /// returns the kernel that runs it.
    ///
    /// q, k, v, output (the forward's) and outputGradient are [batch, plan.heads, S, headDim] in `dtype`,
    /// lse the forward's [batch, plan.heads, S] float32; dq, dk, dv receive the gradients in `dtype`
    /// (accumulated in fp32, rounded once); `textValid` as the forward's; `workspace` holds at least `backwardWorkspaceByteCount` bytes and is not
    /// touched by anything else until the stream has run the work. Allocates nothing. Throws like
    /// `forward`. Rows whose lse is NaN, ±∞ or of magnitude at least `STAExactRowsKernel.backwardLSELimit`
    /// (where fp32 cannot carry L) get their dq, and the keys they attend their dk and dv, redone in
    /// float64 by `STAExactRowsKernel` on the same stream after the backward kernels (the workspace holds
    /// both parts: `backwardWorkspaceByteCount`).
    @discardableResult
    public func backward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, lse: DeviceBuffer,
        outputGradient: DeviceBuffer, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer,
        scale: Float? = nil, textValid: DeviceBuffer? = nil, workspace: DeviceBuffer, stream: CUDAStream? = nil,
        kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> AttentionKernel {
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .backward)
        let context = q.context
        let (kernel, scale) = try prepare(call, scale: scale, textValid: textValid, context: context, preference: preference)
        let compiled = try backwardKernel(kernel, for: call, context: context)
        let lengths = try self.textValid(textValid, plan: plan, kernelPlan: compiled.plan, batch: batch, context: context)
        let layout = Self.backwardWorkspaceLayout(kernel: kernel, plan: plan, batch: batch, headDim: headDim)
        guard workspace.byteCount >= layout.total else {
            throw .invalidArgument(
                "the backward workspace holds \(workspace.byteCount) bytes; this call needs \(layout.total) "
                    + "(backwardWorkspaceByteCount)")
        }
        let (kernelWorkspace, exactWorkspace) = try driver {
            (try DeviceBuffer(borrowing: workspace.address, byteCount: layout.kernels, context: context),
             try DeviceBuffer(
                borrowing: workspace.address(byteOffset: layout.exactOffset), byteCount: layout.total - layout.exactOffset,
                context: context))
        }
        do throws(STAKernelError) {
            try compiled.launch(
                q: q, k: k, v: v, output: output, lse: lse, outputGradient: outputGradient, dq: dq, dk: dk, dv: dv,
                batch: batch, scale: scale, textValid: lengths, workspace: kernelWorkspace, stream: stream)
        } catch {
            throw AttentionError(error, prefix: "launch of the \(kernel) backward kernels")
        }
        // Gradients that rows whose lse fp32 cannot carry reach, redone in float64 (docs/SEMANTICS.md).
        let exact = try exactRowsKernel(for: call, context: context)
        let exactLengths = try self.textValid(textValid, plan: plan, kernelPlan: exact.plan, batch: batch, context: context)
        do throws(STAKernelError) {
            try exact.launchBackward(
                q: q, k: k, v: v, output: output, outputGradient: outputGradient, lse: lse, dq: dq, dk: dk, dv: dv,
                batch: batch, scale: scale, textValid: exactLengths, workspace: exactWorkspace, stream: stream)
        } catch {
            throw AttentionError(error, prefix: "launch of the exact-rows backward kernel")
        }
        return kernel
    }

    /// `backward` over raw device addresses (CUdeviceptr) in device `device`'s primary context, as the C
    /// interface passes them: q, k, v, output, outputGradient, dq, dk, dv 16-byte aligned and in `dtype`;
    /// lse 4-byte aligned float32; `textValid` 0 or `batch` Int32 lengths; `workspace` 256-byte aligned
    /// with `workspaceBytes` ≥ `backwardWorkspaceByteCount` (0 when that is 0); `stream` a CUstream of
    /// that context or 0. Everything that can be checked without the device is checked first. Returns
    /// once the work is queued; allocates nothing.
    @discardableResult
    public func backward(
        plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType,
        q: UInt64, k: UInt64, v: UInt64, output: UInt64, lse: UInt64, outputGradient: UInt64,
        dq: UInt64, dk: UInt64, dv: UInt64, scale: Double?, textValid: UInt64 = 0,
        workspace: UInt64, workspaceBytes: Int, stream: UInt64 = 0, device: Int,
        kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> AttentionKernel {
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: .backward)
        let tensors = [("q", q), ("k", k), ("v", v), ("out", output), ("dout", outputGradient), ("dq", dq), ("dk", dk), ("dv", dv)]
        try DeviceAddress.checkOptional(workspace, "workspace", alignment: 256)
        guard workspaceBytes >= 0 else {
            throw .invalidArgument("workspace_bytes is \(workspaceBytes); give the size sta_backward_cuda_workspace_size reported")
        }
        let (shape, resolved, tensorBytes) = try checkAddresses(
            call, preference: preference, tensors: tensors, lse: lse, textValid: textValid, device: device, scale: scale)
        let needed = try backwardWorkspaceByteCount(
            plan: plan, batch: batch, headDim: headDim, dtype: dtype, device: device, kernel: preference)
        guard workspaceBytes >= needed, needed == 0 || workspace != 0 else {
            throw .invalidArgument(
                "workspace is \(workspace == 0 ? "0" : "\(workspaceBytes) bytes"); this call needs \(needed) bytes "
                    + "(ask sta_backward_cuda_workspace_size)")
        }
        let context = try self.context(device: device)
        let buffers = try DeviceAddress.borrow(
            tensors.map { ($0.1, tensorBytes) } + [(lse, shape.rowCount * 4), (workspace, needed)], context: context)
        return try backward(
            plan: plan, batch: batch, headDim: headDim, dtype: dtype, q: buffers[0], k: buffers[1], v: buffers[2],
            output: buffers[3], lse: buffers[8], outputGradient: buffers[4], dq: buffers[5], dk: buffers[6],
            dv: buffers[7], scale: resolved,
            textValid: try DeviceAddress.borrowOptional(textValid, byteCount: batch * 4, context: context),
            workspace: buffers[9],
            stream: try DeviceAddress.stream(stream, context: context), kernel: preference)
    }

    /// The backward pass on host arrays: uploads the inputs to device `device`, runs the backward kernels,
    /// waits and returns dq, dk and dv in `T` ([batch, heads, S, headDim] each; accumulated in fp32,
    /// rounded once). `output` and `lse` are the forward's for the same inputs, `outputGradient` the
    /// loss's gradient with respect to the output. Gradients are poisoned (NaN) on the device first, so an
    /// element the kernels fail to write shows. Cost: about 2.5 × the forward's effective FLOPs plus the
    /// copies.
    public func backward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int, q: [T], k: [T], v: [T], output: [T], lse: [Float],
        outputGradient: [T], scale: Float? = nil, textValid: [Int]? = nil, device: Int = 0,
        kernel preference: KernelPreference = .automatic
    ) throws(AttentionError) -> (dq: [T], dk: [T], dv: [T]) {
        let shape = try AttentionShape(plan: plan, batch: batch, headDim: headDim)
        try shape.check([
            ("q", q.count), ("k", k.count), ("v", v.count), ("output", output.count), ("lse", lse.count),
            ("outputGradient", outputGradient.count),
        ])
        let call = AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, direction: .backward)
        try KernelSelection.checkCall(preference, call, onCUDA: true)
        let scale = try AttentionScale.resolve(scale, headDim: headDim)
        try TextValidLengths.check(textValid, batch: batch, layout: plan.layout)
        let context = try self.context(device: device)
        let workspaceBytes = try backwardWorkspaceByteCount(
            plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, device: device, kernel: preference)
        return try driver {
            let inputs = try [q, k, v, output, outputGradient].map { try HostCopy.upload($0, context: context) }
            let deviceLSE = try HostCopy.upload(lse, context: context)
            let gradients = try (0..<3).map { _ in
                try DeviceBuffer(context: context, byteCount: shape.elementCount * T.dtype.byteCount)
            }
            for buffer in gradients { try buffer.fill(byte: 0xFF) }
            let workspace = try DeviceBuffer(context: context, byteCount: workspaceBytes)
            let lengths = try textValid.map { try DeviceBuffer(context: context, copying: $0.map { Int32($0) }) }
            try backward(
                plan: plan, batch: batch, headDim: headDim, dtype: T.dtype, q: inputs[0], k: inputs[1], v: inputs[2],
                output: inputs[3], lse: deviceLSE, outputGradient: inputs[4], dq: gradients[0], dk: gradients[1],
                dv: gradients[2], scale: scale, textValid: lengths, workspace: workspace, stream: nil, kernel: preference)
            try context.synchronize()
            let result = try gradients.map { try HostCopy.download($0, count: shape.elementCount, as: T.self) }
            return (result[0], result[1], result[2])
        }
    }
}
