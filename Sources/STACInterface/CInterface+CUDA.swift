import SlidingTileAttention

// The CUDA functions of sta.h: argument marshalling over `CUDAEngine.shared`, which owns the devices'
// primary contexts, the compiled kernels, the checks and the kernel choice.

/// Parses the `kernel` argument: NULL means "auto"; otherwise a name `KernelPreference(name:)` takes.
/// Reads at most 33 bytes, so a long or unterminated string is rejected without scanning further.
func kernelPreference(_ name: UnsafePointer<CChar>?) throws(CInterfaceError) -> KernelPreference {
    guard let name else { return .automatic }
    var bytes = [UInt8]()
    var index = 0
    while index <= 32, name[index] != 0 {
        bytes.append(UInt8(bitPattern: name[index]))
        index += 1
    }
    return try interface { () throws(AttentionError) in try KernelPreference(name: String(decoding: bytes, as: UTF8.self)) }
}

/// Attention on a CUDA GPU over caller-owned device memory; see sta.h.
@_cdecl("sta_forward_cuda")
public func sta_forward_cuda(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UInt64, _ k: UInt64, _ v: UInt64, _ out: UInt64, _ lse: UInt64, _ scale: Double, _ textValid: UInt64,
    _ stream: UInt64, _ device: Int32, _ kernel: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, batch, headDim)
        let preference = try kernelPreference(kernel)
        try interface { () throws(AttentionError) in
            try CUDAEngine.shared.forward(
                plan: a.plan, batch: a.batch, headDim: a.headDim, dtype: a.dtype, q: q, k: k, v: v, output: out,
                lse: lse, scale: scale, textValid: textValid, stream: stream, device: Int(device), kernel: preference)
        }
    }
}

/// Bytes of device workspace `sta_backward_cuda` needs; see sta.h.
@_cdecl("sta_backward_cuda_workspace_size")
public func sta_backward_cuda_workspace_size(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64, _ device: Int32,
    _ kernel: UnsafePointer<CChar>?, _ bytes: UnsafeMutablePointer<Int64>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, batch, headDim)
        let preference = try kernelPreference(kernel)
        let output = try required(bytes, "bytes")
        let count = try interface { () throws(AttentionError) in
            try CUDAEngine.shared.backwardWorkspaceByteCount(
                plan: a.plan, batch: a.batch, headDim: a.headDim, dtype: a.dtype, device: Int(device), kernel: preference)
        }
        output.pointee = Int64(count)
    }
}

/// The backward pass on a CUDA GPU over caller-owned device memory; see sta.h.
@_cdecl("sta_backward_cuda")
public func sta_backward_cuda(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UInt64, _ k: UInt64, _ v: UInt64, _ out: UInt64, _ lse: UInt64, _ dout: UInt64,
    _ dq: UInt64, _ dk: UInt64, _ dv: UInt64, _ scale: Double, _ textValid: UInt64,
    _ workspace: UInt64, _ workspaceBytes: Int64, _ stream: UInt64, _ device: Int32, _ kernel: UnsafePointer<CChar>?,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, batch, headDim)
        let preference = try kernelPreference(kernel)
        let workspaceBytes = try size(workspaceBytes, "workspace_bytes")
        try interface { () throws(AttentionError) in
            try CUDAEngine.shared.backward(
                plan: a.plan, batch: a.batch, headDim: a.headDim, dtype: a.dtype, q: q, k: k, v: v, output: out,
                lse: lse, outputGradient: dout, dq: dq, dk: dk, dv: dv, scale: scale, textValid: textValid,
                workspace: workspace, workspaceBytes: workspaceBytes, stream: stream, device: Int(device),
                kernel: preference)
        }
    }
}

/// Which kernel a call would run; see sta.h.
@_cdecl("sta_kernel_choice")
public func sta_kernel_choice(
    _ plan: OpaquePointer?, _ dtype: Int32, _ headDim: Int64, _ direction: Int32, _ device: Int32,
    _ kernel: UnsafePointer<CChar>?, _ name: UnsafeMutablePointer<CChar>?, _ nameLength: Int,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, 1, headDim)
        guard let direction = AttentionDirection(rawValue: Int(direction)) else {
            throw .invalidArgument("direction is \(direction); allowed: 0 (forward) or 1 (backward)")
        }
        guard device >= -1 else {
            throw .invalidArgument("device is \(device); give -1 for the CPU or a CUDA device ordinal (0, 1, …)")
        }
        let preference = try kernelPreference(kernel)
        let name = try required(name, "name")
        guard nameLength > 0 else { throw .invalidArgument("name_len is \(nameLength); give the size of name in bytes") }
        let chosen = try interface { () throws(AttentionError) in
            // The same checks, in the same order, as the call itself (batch 1).
            _ = try AttentionShape(plan: a.plan, batch: 1, headDim: a.headDim)
            let call = AttentionCall(plan: a.plan, batch: 1, headDim: a.headDim, dtype: a.dtype, direction: direction)
            if device == -1 { return try KernelSelection.choose(preference, call, on: .cpu) }
            return try CUDAEngine.shared.kernel(for: call, preference: preference, device: Int(device))
        }
        writeMessage(chosen.rawValue, to: name, length: nameLength)
    }
}
