import CUDADriver
import STACUDAKernels
import STAGeometry
import Synchronization

/// The primary contexts opened so far, one per device ordinal, kept for the life of the process (the
/// same contexts the CUDA runtime, and so PyTorch, use: their device addresses are valid here).
enum PrimaryContexts {
    private static let contexts = Mutex<[Int: CUDAContext]>([:])

    /// The primary context of device `ordinal`, opened (and retained) on first use; made current on the
    /// calling thread.
    static func context(device ordinal: Int) throws(CUDAError) -> CUDAContext {
        let result: Result<CUDAContext, CUDAError> = contexts.withLock { table in
            if let context = table[ordinal] { return .success(context) }
            do throws(CUDAError) {
                let context = try CUDAContext.open(device: ordinal)
                table[ordinal] = context
                return .success(context)
            } catch {
                return .failure(error)
            }
        }
        let context = try result.get()
        try context.makeCurrent()
        return context
    }
}

/// Parses the `kernel` argument of `sta_forward_cuda`: nil or "auto", "portable", "hopper".
func kernelChoice(_ name: UnsafePointer<CChar>?) throws(CInterfaceError) -> ForwardKernelChoice {
    guard let name else { return .automatic }
    // Bounded read: a name longer than 32 bytes is rejected without scanning further.
    var bytes = [UInt8]()
    var index = 0
    while index <= 32, name[index] != 0 {
        bytes.append(UInt8(bitPattern: name[index]))
        index += 1
    }
    let text = String(decoding: bytes, as: UTF8.self)
    switch text.lowercased() {
    case "auto", "automatic", "": return .automatic
    case "portable", "sm80", "sm_80": return .portable
    case "hopper", "sm90", "sm_90", "sm_90a": return .hopper
    default:
        throw .invalidArgument("kernel is \"\(text)\"; allowed: \"auto\", \"portable\" (sm_80 and newer) or \"hopper\" (sm_90)")
    }
}

/// Attention on a CUDA GPU over caller-owned device memory; see sta.h.
@_cdecl("sta_forward_cuda")
public func sta_forward_cuda(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UInt64, _ k: UInt64, _ v: UInt64, _ out: UInt64, _ lse: UInt64, _ scale: Double, _ stream: UInt64,
    _ device: Int32, _ kernel: UnsafePointer<CChar>?, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        let dtype = try InterfaceDType(code: dtype)
        guard dtype != .float32 else {
            throw .invalidArgument("dtype is STA_DTYPE_FLOAT32; the CUDA kernels take float16 or bfloat16 (convert first, or use sta_forward_cpu)")
        }
        let shape = try ForwardShape(handle: handle, batch: batch, headDim: headDim)
        let choice = try kernelChoice(kernel)
        try checkDeviceAddress(q, "q", alignment: 16)
        try checkDeviceAddress(k, "k", alignment: 16)
        try checkDeviceAddress(v, "v", alignment: 16)
        try checkDeviceAddress(out, "out", alignment: 16)
        try checkDeviceAddress(lse, "lse", alignment: 4)
        guard device >= 0 else { throw .invalidArgument("device is \(device); give a CUDA device ordinal (0, 1, …)") }
        let scale = try resolvedScale(scale, headDim: shape.headDim)
        let tensorBytes = try product([shape.elements, dtype.byteCount], "tensor bytes")
        let lseBytes = try product([shape.rows, 4], "lse bytes")

        let context = try cuda { () throws(CUDAError) in try PrimaryContexts.context(device: Int(device)) }
        let key = PlanHandle.KernelKey(
            device: Int(device), dtype: dtype.dtype, headDim: shape.headDim, choice: choice.resolved(for: context))
        let compiled: any AttentionForwardKernel
        do throws(STAKernelError) {
            compiled = try handle.kernel(for: key, context: context)
        } catch {
            throw CInterfaceError(.cuda, "the \(key.choice) kernel for \(dtype.dtype), head dim \(shape.headDim): \(error)")
        }
        let (qBuffer, kBuffer, vBuffer, outBuffer, lseBuffer, borrowedStream) = try cuda {
            () throws(CUDAError) in
            (
                try DeviceBuffer(borrowing: q, byteCount: tensorBytes, context: context),
                try DeviceBuffer(borrowing: k, byteCount: tensorBytes, context: context),
                try DeviceBuffer(borrowing: v, byteCount: tensorBytes, context: context),
                try DeviceBuffer(borrowing: out, byteCount: tensorBytes, context: context),
                try DeviceBuffer(borrowing: lse, byteCount: lseBytes, context: context),
                stream == 0 ? nil : try CUDAStream(borrowing: stream, context: context)
            )
        }
        do throws(STAKernelError) {
            try compiled.launch(
                q: qBuffer, k: kBuffer, v: vBuffer, output: outBuffer, lse: lseBuffer, batch: shape.batch,
                scale: scale, textValid: nil, stream: borrowedStream)
        } catch {
            throw CInterfaceError(.cuda, "launch of the \(key.choice) kernel: \(error)")
        }
    }
}

/// `body`'s result, with a driver error turned into `STA_ERROR_CUDA`.
private func cuda<T>(_ body: () throws(CUDAError) -> T) throws(CInterfaceError) -> T {
    do throws(CUDAError) {
        return try body()
    } catch {
        throw CInterfaceError(.cuda, error.description)
    }
}

/// Throws unless `address` is non-zero and a multiple of `alignment`.
private func checkDeviceAddress(_ address: UInt64, _ name: String, alignment: Int) throws(CInterfaceError) {
    guard address != 0 else {
        throw .invalidArgument("\(name) is a NULL device address; pass tensor.data_ptr() of a CUDA tensor")
    }
    try checkAlignment(UInt(address), name, alignment)
}
