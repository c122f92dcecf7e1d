import CUDADriver
import STAGeometry

extension CUDAEngine {
    /// What both device-buffer passes check before they launch: shape, scale and valid lengths; then the
    /// kernel `preference` runs `call` with on `context`'s device. Returns the kernel and the scale.
    func prepare(
        _ call: AttentionCall, scale: Float?, textValid: DeviceBuffer?, context: CUDAContext,
        preference: KernelPreference
    ) throws(AttentionError) -> (kernel: AttentionKernel, scale: Float) {
        _ = try AttentionShape(plan: call.plan, batch: call.batch, headDim: call.headDim)
        let scale = try AttentionScale.resolve(scale, headDim: call.headDim)
        return (try KernelSelection.choose(preference, call, on: .cuda(CUDADeviceProperties(context))), scale)
    }

    /// What both raw-address passes check before a device is touched, in the order the C interface
    /// documents: shape, the call's kernel capability, each tensor address (non-zero, 16-byte aligned), lse
    /// (4-byte aligned), text_valid (0 or 4-byte aligned), the device ordinal, the scale. Returns the shape,
    /// the scale and the bytes of one tensor.
    func checkAddresses(
        _ call: AttentionCall, preference: KernelPreference, tensors: [(String, UInt64)], lse: UInt64,
        textValid: UInt64, device: Int, scale: Double?
    ) throws(AttentionError) -> (shape: AttentionShape, scale: Float, tensorBytes: Int) {
        let shape = try AttentionShape(plan: call.plan, batch: call.batch, headDim: call.headDim)
        try KernelSelection.checkCall(preference, call, onCUDA: true)
        for (name, address) in tensors { try DeviceAddress.check(address, name, alignment: 16) }
        try DeviceAddress.check(lse, "lse", alignment: 4)
        try DeviceAddress.checkOptional(textValid, "text_valid", alignment: 4)
        guard device >= 0 else { throw .invalidArgument("device is \(device); give a CUDA device ordinal (0, 1, …)") }
        let resolved = try AttentionScale.resolve(scale, headDim: call.headDim)
        let tensorBytes = try AttentionShape.product([shape.elementCount, call.dtype.byteCount], "tensor bytes")
        return (shape, resolved, tensorBytes)
    }
}
