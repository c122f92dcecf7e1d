import STACPUKernels
import STAGeometry
import STATensors

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

    var byteCount: Int { dtype.byteCount }
}

/// The element and row counts of one forward call, validated: q, k, v, out hold `elements` values,
/// lse holds `rows`.
struct ForwardShape: Sendable {
    let batch: Int
    let headDim: Int
    let rows: Int
    let elements: Int

    init(handle: PlanHandle, batch: Int64, headDim: Int64) throws(CInterfaceError) {
        self.batch = try checked(batch, "batch", in: 1...STALimits.maximumBatch)
        self.headDim = try checked(headDim, "head_dim", in: 1...STALimits.maximumHeadDim)
        rows = try product([self.batch, handle.plan.heads, handle.layout.sequenceLength], "batch × heads × S")
        elements = try product([rows, self.headDim], "batch × heads × S × head_dim")
    }
}

/// The softmax scale of a call: 0 means 1/√headDim; otherwise positive and finite (as a Float).
func resolvedScale(_ scale: Double, headDim: Int) throws(CInterfaceError) -> Float {
    if scale == 0 { return 1 / Float(headDim).squareRoot() }
    let single = Float(scale)
    guard scale.isFinite, scale > 0, single.isFinite, single > 0 else {
        throw .invalidArgument("scale is \(scale); give 0 for 1/sqrt(head_dim) or a positive finite number")
    }
    return single
}

/// Throws unless `pointer` is a multiple of `alignment`.
func checkAlignment(_ pointer: UInt, _ name: String, _ alignment: Int) throws(CInterfaceError) {
    guard pointer % UInt(alignment) == 0 else {
        throw .invalidArgument(
            "\(name) (0x\(String(pointer, radix: 16))) is not aligned to \(alignment) bytes; pass an aligned, contiguous tensor")
    }
}

/// Attention on the CPU; see sta.h.
@_cdecl("sta_forward_cpu")
public func sta_forward_cpu(
    _ plan: OpaquePointer?, _ dtype: Int32, _ batch: Int64, _ headDim: Int64,
    _ q: UnsafeRawPointer?, _ k: UnsafeRawPointer?, _ v: UnsafeRawPointer?, _ out: UnsafeMutableRawPointer?,
    _ lse: UnsafeMutablePointer<Float>?, _ scale: Double, _ threads: Int32,
    _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let handle = try HandleRegistry.lookup(plan)
        let dtype = try InterfaceDType(code: dtype)
        let shape = try ForwardShape(handle: handle, batch: batch, headDim: headDim)
        let q = try required(q, "q"), k = try required(k, "k"), v = try required(v, "v")
        let out = try required(out, "out"), lse = try required(lse, "lse")
        try checkAlignment(UInt(bitPattern: q), "q", dtype.byteCount)
        try checkAlignment(UInt(bitPattern: k), "k", dtype.byteCount)
        try checkAlignment(UInt(bitPattern: v), "v", dtype.byteCount)
        try checkAlignment(UInt(bitPattern: out), "out", dtype.byteCount)
        try checkAlignment(UInt(bitPattern: lse), "lse", 4)
        guard threads >= 0, threads <= STALimits.maximumThreads else {
            throw .invalidArgument(
                "threads is \(threads); give 0 for every core or a count up to \(STALimits.maximumThreads)")
        }
        let scale = try resolvedScale(scale, headDim: shape.headDim)
        let threadCount: Int? = threads == 0 ? nil : Int(threads)
        let lseBuffer = UnsafeMutableBufferPointer(start: lse, count: shape.rows)
        do throws(CPUAttentionError) {
            switch dtype {
            case .float32:
                try run(Float.self, handle: handle, shape: shape, q: q, k: k, v: v, out: out, lse: lseBuffer,
                        scale: scale, threads: threadCount)
            case .float16:
                try run(Float16.self, handle: handle, shape: shape, q: q, k: k, v: v, out: out, lse: lseBuffer,
                        scale: scale, threads: threadCount)
            case .bfloat16:
                try run(BFloat16.self, handle: handle, shape: shape, q: q, k: k, v: v, out: out, lse: lseBuffer,
                        scale: scale, threads: threadCount)
            }
        } catch {
            throw CInterfaceError(.cpu, error.description)
        }
    }
}

private func run<T: StorageScalar>(
    _ type: T.Type, handle: PlanHandle, shape: ForwardShape,
    q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, out: UnsafeMutableRawPointer,
    lse: UnsafeMutableBufferPointer<Float>, scale: Float, threads: Int?
) throws(CPUAttentionError) {
    func input(_ pointer: UnsafeRawPointer) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: T.self), count: shape.elements)
    }
    try CPUAttention.forward(
        plan: handle.plan, batch: shape.batch, headDim: shape.headDim, q: input(q), k: input(k), v: input(v),
        output: UnsafeMutableBufferPointer(start: out.assumingMemoryBound(to: T.self), count: shape.elements),
        lse: lse, scale: scale, threads: threads)
}
