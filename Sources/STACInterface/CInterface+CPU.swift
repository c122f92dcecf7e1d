import SlidingTileAttention

// The CPU functions of sta.h: argument marshalling over `CPUEngine`, which owns the checks and the kernel.

/// The storage dtype codes of sta.h (`STA_DTYPE_*`).
enum InterfaceDType: Int32, Sendable {
    case float32 = 0
    case float16 = 1
    case bfloat16 = 2

    init(code: Int32) throws(CInterfaceError) {
        guard let dtype = InterfaceDType(rawValue: code) else {
            throw .invalidArgument(
                "dtype is \(code); allowed: 0 (STA_DTYPE_FLOAT32), 1 (STA_DTYPE_FLOAT16), 2 (STA_DTYPE_BFLOAT16)")
        }
        self = dtype
    }

    var dtype: DType {
        switch self {
        case .float32: return .float32
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        }
    }
}

/// The arguments every attention function of sta.h begins with: the plan behind the handle, the dtype,
/// batch and head dim (whose ranges the engines check).
struct CallArguments {
    let plan: AttentionPlan
    let dtype: DType
    let batch: Int
    let headDim: Int

    init(_ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64) throws(CInterfaceError) {
        self.plan = try HandleRegistry.lookup(plan).plan
        self.dtype = try InterfaceDType(code: dtype).dtype
        self.batch = try size(batch, "batch")
        self.headDim = try size(headDim, "head_dim")
    }
}

/// A host pointer of the caller, non-NULL and aligned to `alignment` bytes.
func hostPointer<P: _Pointer>(_ pointer: P?, _ name: String, alignment: Int) throws(CInterfaceError) -> P {
    let pointer = try required(pointer, name)
    try checkAlignment(UInt(bitPattern: pointer), name, alignment)
    return pointer
}

/// Host pointers of the caller, each non-NULL and aligned to `alignment` bytes, in order.
func hostPointers<P: _Pointer>(_ named: [(String, P?)], alignment: Int) throws(CInterfaceError) -> [P] {
    var result = [P]()
    for (name, pointer) in named { result.append(try hostPointer(pointer, name, alignment: alignment)) }
    return result
}

/// Throws unless `pointer` is a multiple of `alignment`.
func checkAlignment(_ pointer: UInt, _ name: String, _ alignment: Int) throws(CInterfaceError) {
    guard pointer % UInt(alignment) == 0 else {
        throw .invalidArgument(
            "\(name) (0x\(String(pointer, radix: 16))) is not aligned to \(alignment) bytes; pass an aligned, contiguous tensor")
    }
}

/// The per-row valid text lengths behind `pointer` (`batch` entries), or nil for NULL.
func textValidLengths(_ pointer: UnsafePointer<Int32>?, batch: Int) -> [Int]? {
    pointer.map { pointer in (0..<batch).map { Int(pointer[$0]) } }
}

/// The thread count of a call: 0 means every core.
func threadCount(_ threads: Int32) throws(CInterfaceError) -> Int? {
    guard threads >= 0 else { throw .invalidArgument("threads is \(threads); give 0 for every core or a positive count") }
    return threads == 0 ? nil : Int(threads)
}

/// Attention on the CPU; see sta.h.
@_cdecl("sta_forward_cpu")
public func sta_forward_cpu(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UnsafeRawPointer?, _ k: UnsafeRawPointer?, _ v: UnsafeRawPointer?, _ out: UnsafeMutableRawPointer?,
    _ lse: UnsafeMutablePointer<Float>?, _ scale: Double, _ textValid: UnsafePointer<Int32>?, _ threads: Int32,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, batch, headDim)
        let inputs = try hostPointers([("q", q), ("k", k), ("v", v)], alignment: a.dtype.byteCount)
        let out = try hostPointer(out, "out", alignment: a.dtype.byteCount)
        let lse = try hostPointer(lse, "lse", alignment: 4)
        let threads = try threadCount(threads)
        try interface { () throws(AttentionError) in
            // Shape first: text_valid is read only once batch is known to be valid.
            _ = try AttentionShape(plan: a.plan, batch: a.batch, headDim: a.headDim)
            try CPUEngine.forward(
                plan: a.plan, batch: a.batch, headDim: a.headDim, dtype: a.dtype, q: inputs[0], k: inputs[1],
                v: inputs[2], output: out, lse: lse, scale: scale, textValid: textValidLengths(textValid, batch: a.batch),
                threads: threads)
        }
    }
}

/// The backward pass on the CPU; see sta.h.
@_cdecl("sta_backward_cpu")
public func sta_backward_cpu(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UnsafeRawPointer?, _ k: UnsafeRawPointer?, _ v: UnsafeRawPointer?, _ out: UnsafeRawPointer?,
    _ lse: UnsafePointer<Float>?, _ dout: UnsafeRawPointer?,
    _ dq: UnsafeMutableRawPointer?, _ dk: UnsafeMutableRawPointer?, _ dv: UnsafeMutableRawPointer?,
    _ scale: Double, _ textValid: UnsafePointer<Int32>?, _ threads: Int32,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let a = try CallArguments(plan, dtype, batch, headDim)
        let inputs = try hostPointers(
            [("q", q), ("k", k), ("v", v), ("out", out), ("dout", dout)], alignment: a.dtype.byteCount)
        let lse = try hostPointer(lse, "lse", alignment: 4)
        let gradients = try hostPointers([("dq", dq), ("dk", dk), ("dv", dv)], alignment: a.dtype.byteCount)
        let threads = try threadCount(threads)
        try interface { () throws(AttentionError) in
            _ = try AttentionShape(plan: a.plan, batch: a.batch, headDim: a.headDim)
            try CPUEngine.backward(
                plan: a.plan, batch: a.batch, headDim: a.headDim, dtype: a.dtype, q: inputs[0], k: inputs[1],
                v: inputs[2], output: inputs[3], lse: lse, outputGradient: inputs[4], dq: gradients[0],
                dk: gradients[1], dv: gradients[2], scale: scale, textValid: textValidLengths(textValid, batch: a.batch),
                threads: threads)
        }
    }
}
