import STACPUKernelsC
import STATensors

/// The storage types the kernels read and write without a generic conversion per element.
///
/// The kernels themselves are not generic: they take raw pointers and one of these kinds, and convert a
/// whole row at a time (eight elements per instruction) between storage and `Float`.
enum StorageKind: Sendable {
    case float32, float16, bfloat16

    /// The kind of `T`, or nil when `T` is some other `StorageScalar`.
    init?<T: StorageScalar>(_ type: T.Type) {
        if T.self == Float.self {
            self = .float32
        } else if T.self == Float16.self {
            self = .float16
        } else if T.self == BFloat16.self {
            self = .bfloat16
        } else {
            return nil
        }
    }

    /// The kind's code in the C micro-kernels.
    var code: Int32 {
        switch self {
        case .float32: Int32(STA_CPU_FLOAT32)
        case .float16: Int32(STA_CPU_FLOAT16)
        case .bfloat16: Int32(STA_CPU_BFLOAT16)
        }
    }

    /// Reads `count` elements starting at element `offset` of `base` as `Float` into `destination`,
    /// multiplied by `scale`. Cost: about count / 8 vector instructions (F16C converts fp16 where the
    /// CPU has it).
    @inline(__always)
    func loadRow(
        from base: UnsafeRawPointer, offset: Int, count: Int, scale: Float = 1,
        into destination: UnsafeMutablePointer<Float>, level: Int32
    ) {
        sta_cpu_load_row(level, code, base, offset, count, scale, destination)
    }

    /// Writes `count` floats of `source` into storage at element `offset` of `base`, rounding to nearest
    /// (ties to even) for the 16-bit kinds; NaN stays NaN. Cost: about count / 8 vector instructions.
    @inline(__always)
    func storeRow(
        _ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, offset: Int, level: Int32
    ) {
        sta_cpu_store_row(level, code, source, count, base, offset)
    }

    /// Writes `count` zeros at element `offset` of `base`.
    func storeZeros(count: Int, to base: UnsafeMutableRawPointer, offset: Int) {
        switch self {
        case .float32: (base.assumingMemoryBound(to: Float.self) + offset).update(repeating: 0, count: count)
        case .float16: (base.assumingMemoryBound(to: Float16.self) + offset).update(repeating: 0, count: count)
        case .bfloat16:
            (base.assumingMemoryBound(to: BFloat16.self) + offset).update(
                repeating: BFloat16(bitPattern: 0), count: count)
        }
    }
}
