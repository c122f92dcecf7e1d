/// A bfloat16 storage value: the high 16 bits of an IEEE float32.
///
/// Conversion from `Float` rounds to nearest, ties to even; NaN stays NaN (quiet). Arithmetic is done
/// by converting to `Float`.
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
        }
    }

    @inlinable
    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var description: String { floatValue.description }
}

/// A floating-point type a tensor can be stored in and computed from as `Float`.
public protocol StorageScalar: Sendable {
    static var dtype: DType { get }
    init(_ value: Float)
    var floatValue: Float { get }
}

extension Float: StorageScalar {
    public static var dtype: DType { .float32 }
    @inlinable public var floatValue: Float { self }
}

extension Float16: StorageScalar {
    public static var dtype: DType { .float16 }
    @inlinable public var floatValue: Float { Float(self) }
}

extension BFloat16: StorageScalar {
    public static var dtype: DType { .bfloat16 }
}
