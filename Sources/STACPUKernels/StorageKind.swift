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

    /// Reads `count` elements starting at element `offset` of `base` as `Float` into `destination`,
    /// multiplied by `scale`. Cost: about count / 8 vector instructions.
    @inline(__always)
    func loadRow(
        from base: UnsafeRawPointer, offset: Int, count: Int, scale: Float = 1,
        into destination: UnsafeMutablePointer<Float>
    ) {
        let factor = SIMD8<Float>(repeating: scale)
        var i = 0
        switch self {
        case .float32:
            let source = base.assumingMemoryBound(to: Float.self) + offset
            while i + 8 <= count {
                store(load(source + i) * factor, destination + i)
                i += 8
            }
            while i < count {
                destination[i] = source[i] * scale
                i += 1
            }
        case .float16:
            let source = base.assumingMemoryBound(to: Float16.self) + offset
            while i + 8 <= count {
                let half = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD8<Float16>.self)
                store(SIMD8<Float>(half) * factor, destination + i)
                i += 8
            }
            while i < count {
                destination[i] = Float(source[i]) * scale
                i += 1
            }
        case .bfloat16:
            let source = base.assumingMemoryBound(to: UInt16.self) + offset
            while i + 8 <= count {
                let bits = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD8<UInt16>.self)
                let wide = SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16
                store(unsafeBitCast(wide, to: SIMD8<Float>.self) * factor, destination + i)
                i += 8
            }
            while i < count {
                destination[i] = Float(bitPattern: UInt32(source[i]) << 16) * scale
                i += 1
            }
        }
    }

    /// Writes `count` floats of `source` into storage at element `offset` of `base`, rounding to nearest
    /// (ties to even) for the 16-bit kinds. Cost: count conversions.
    @inline(__always)
    func storeRow(_ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, offset: Int) {
        switch self {
        case .float32:
            (base.assumingMemoryBound(to: Float.self) + offset).update(from: source, count: count)
        case .float16:
            let destination = base.assumingMemoryBound(to: Float16.self) + offset
            var i = 0
            while i + 8 <= count {
                let half = SIMD8<Float16>(load(source + i))
                UnsafeMutableRawPointer(destination + i).storeBytes(of: half, as: SIMD8<Float16>.self)
                i += 8
            }
            while i < count {
                destination[i] = Float16(source[i])
                i += 1
            }
        case .bfloat16:
            let destination = base.assumingMemoryBound(to: BFloat16.self) + offset
            for i in 0..<count { destination[i] = BFloat16(source[i]) }
        }
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
