/// An integer type a tensor can be stored in: `Int8`, `Int16`, `Int32`, `Int64`, `UInt8`.
public protocol TensorInteger: FixedWidthInteger, Sendable {
    static var dtype: DType { get }
}

extension Int8: TensorInteger { public static var dtype: DType { .int8 } }
extension Int16: TensorInteger { public static var dtype: DType { .int16 } }
extension Int32: TensorInteger { public static var dtype: DType { .int32 } }
extension Int64: TensorInteger { public static var dtype: DType { .int64 } }
extension UInt8: TensorInteger { public static var dtype: DType { .uint8 } }

// MARK: Building tensors from Swift arrays

extension HostTensor {
    /// A tensor of `T.dtype` (f32, f16 or bf16) holding `values` in C order. Cost: one O(n) copy.
    public init<T: StorageScalar>(shape: [Int], values: [T]) throws(TensorError) {
        try Self.checkCount(shape: shape, values.count)
        let bytes: [UInt8]
        switch T.dtype {
        case .float16:
            bytes = Self.encode(values) { Float16($0.floatValue).bitPattern }
        case .bfloat16:
            bytes = Self.encode(values) { BFloat16($0.floatValue).bitPattern }
        default:
            bytes = Self.encode(values) { Float($0.floatValue).bitPattern }
        }
        try self.init(shape: shape, dtype: T.dtype, bytes: bytes)
    }

    /// A float64 tensor holding `values` in C order. Cost: one O(n) copy.
    public init(shape: [Int], values: [Double]) throws(TensorError) {
        try Self.checkCount(shape: shape, values.count)
        try self.init(shape: shape, dtype: .float64, bytes: Self.encode(values) { $0.bitPattern })
    }

    /// An integer tensor of `T.dtype` holding `values` in C order. Cost: one O(n) copy.
    public init<T: TensorInteger>(shape: [Int], values: [T]) throws(TensorError) {
        try Self.checkCount(shape: shape, values.count)
        try self.init(shape: shape, dtype: T.dtype, bytes: Self.encode(values) { $0 })
    }

    /// A bool tensor (one byte per element, 0 or 1) holding `values` in C order.
    public init(shape: [Int], values: [Bool]) throws(TensorError) {
        try Self.checkCount(shape: shape, values.count)
        try self.init(shape: shape, dtype: .bool, bytes: values.map { $0 ? 1 : 0 })
    }

    private static func checkCount(shape: [Int], _ count: Int) throws(TensorError) {
        let expected = try elementCount(of: shape)
        guard expected == count else { throw .elementCountMismatch(shape: shape, expected: expected, actual: count) }
    }

    /// Little-endian bytes of `values` mapped through `bits`.
    static func encode<Source, Bits: FixedWidthInteger>(_ values: [Source], _ bits: (Source) -> Bits) -> [UInt8] {
        let size = MemoryLayout<Bits>.size
        return [UInt8](unsafeUninitializedCapacity: values.count * size) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: bits(value).littleEndian, toByteOffset: index * size, as: Bits.self)
            }
            initialized = values.count * size
        }
    }
}

// MARK: Reading elements

extension HostTensor {
    /// The elements as `Float`, from any dtype: exact for f32, f16 and bf16; f64 rounds to nearest;
    /// integers convert as `Float(x)` (exact up to 2^24); bool gives 0 or 1. Cost: O(n).
    public func floats() throws(TensorError) -> [Float] {
        switch dtype {
        case .float32: return decode(UInt32.self) { Float(bitPattern: $0) }
        case .float16: return decode(UInt16.self) { Float(Float16(bitPattern: $0)) }
        case .bfloat16: return decode(UInt16.self) { BFloat16(bitPattern: $0).floatValue }
        case .float64: return decode(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .int8: return decode(Int8.self) { Float($0) }
        case .int16: return decode(Int16.self) { Float($0) }
        case .int32: return decode(Int32.self) { Float($0) }
        case .int64: return decode(Int64.self) { Float($0) }
        case .uint8: return decode(UInt8.self) { Float($0) }
        case .bool: return decode(UInt8.self) { $0 != 0 ? 1 : 0 }
        }
    }

    /// The elements as `Double`, from any dtype: exact for every float dtype and for integers up to 2^53;
    /// bool gives 0 or 1. Cost: O(n).
    public func doubles() throws(TensorError) -> [Double] {
        switch dtype {
        case .float32: return decode(UInt32.self) { Double(Float(bitPattern: $0)) }
        case .float16: return decode(UInt16.self) { Double(Float16(bitPattern: $0)) }
        case .bfloat16: return decode(UInt16.self) { BFloat16(bitPattern: $0).doubleValue }
        case .float64: return decode(UInt64.self) { Double(bitPattern: $0) }
        case .int8: return decode(Int8.self) { Double($0) }
        case .int16: return decode(Int16.self) { Double($0) }
        case .int32: return decode(Int32.self) { Double($0) }
        case .int64: return decode(Int64.self) { Double($0) }
        case .uint8: return decode(UInt8.self) { Double($0) }
        case .bool: return decode(UInt8.self) { $0 != 0 ? 1 : 0 }
        }
    }

    /// The elements as `T` (f32, f16 or bf16): a bit-exact copy when `dtype == T.dtype`, otherwise
    /// `converted(to: T.dtype)` first (round to nearest, ties to even). Cost: O(n).
    public func values<T: StorageScalar>(as type: T.Type = T.self) throws(TensorError) -> [T] {
        let source = dtype == T.dtype ? self : try converted(to: T.dtype)
        switch T.dtype {
        case .float16:
            return source.decode(UInt16.self) { T(Float(Float16(bitPattern: $0))) }
        case .bfloat16:
            return source.decode(UInt16.self) { T(BFloat16(bitPattern: $0).floatValue) }
        default:
            return try source.floats().map { T($0) }
        }
    }

    /// The elements as `Double`; the same as `doubles()`.
    public func values(as type: Double.Type) throws(TensorError) -> [Double] {
        try doubles()
    }

    /// The elements as the integer type `T`; throws `notRepresentable` for a value that is not integral
    /// or out of `T`'s range. Exact for integer dtypes. Cost: O(n).
    public func values<T: TensorInteger>(as type: T.Type = T.self) throws(TensorError) -> [T] {
        let source = dtype == T.dtype ? self : try converted(to: T.dtype)
        return source.decode(T.self) { $0 }
    }

    /// The elements as `Bool` (nonzero is true, as numpy's `astype(bool)`). Cost: O(n).
    public func values(as type: Bool.Type) throws(TensorError) -> [Bool] {
        try doubles().map { $0 != 0 }
    }

    /// Loads every element as the little-endian integer `Bits` and maps it.
    func decode<Bits: FixedWidthInteger, Element>(_: Bits.Type, _ transform: (Bits) -> Element) -> [Element] {
        let count = elementCount
        let size = MemoryLayout<Bits>.size
        return bytes.withUnsafeBytes { raw in
            [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<count {
                    let bits = Bits(littleEndian: raw.loadUnaligned(fromByteOffset: index * size, as: Bits.self))
                    (buffer.baseAddress! + index).initialize(to: transform(bits))
                }
                initialized = count
            }
        }
    }
}

// MARK: Converting between dtypes

extension HostTensor {
    /// This tensor with its elements stored as `target`.
    ///
    /// - To a float dtype: round to nearest, ties to even, in a single rounding step from the exact source
    ///   value (int64 beyond 2^53 is first rounded to `Double`). Overflow gives infinity, NaN stays NaN.
    /// - To an integer dtype: every value must be integral and inside the target range, else throws
    ///   `notRepresentable` naming the first offending element (NaN and infinities included).
    /// - To bool: nonzero (and NaN) is true.
    ///
    /// Cost: O(n), with a temporary array of n `Double`s (n `Float`s between f32, f16 and bf16).
    public func converted(to target: DType) throws(TensorError) -> HostTensor {
        if target == dtype { return self }
        let narrowFloats: Set<DType> = [.float32, .float16, .bfloat16]
        if narrowFloats.contains(dtype), narrowFloats.contains(target) {
            let floats = try floats()
            switch target {
            case .float16: return try HostTensor(shape: shape, values: floats.map { Float16($0) })
            case .bfloat16: return try HostTensor(shape: shape, values: floats.map { BFloat16($0) })
            default: return try HostTensor(shape: shape, values: floats)
            }
        }
        let doubles = try doubles()
        let bytes: [UInt8]
        switch target {
        case .float32: bytes = Self.encode(doubles) { Float($0).bitPattern }
        case .float16: bytes = Self.encode(doubles) { Float16($0).bitPattern }
        case .bfloat16: bytes = Self.encode(doubles) { BFloat16($0).bitPattern }
        case .float64: bytes = Self.encode(doubles) { $0.bitPattern }
        case .int8: bytes = try Self.encodeExactly(doubles, as: Int8.self)
        case .int16: bytes = try Self.encodeExactly(doubles, as: Int16.self)
        case .int32: bytes = try Self.encodeExactly(doubles, as: Int32.self)
        case .int64: bytes = try Self.encodeExactly(doubles, as: Int64.self)
        case .uint8: bytes = try Self.encodeExactly(doubles, as: UInt8.self)
        case .bool: bytes = doubles.map { $0 != 0 ? 1 : 0 }
        }
        return try HostTensor(shape: shape, dtype: target, bytes: bytes)
    }

    private static func encodeExactly<T: TensorInteger>(_ values: [Double], as _: T.Type) throws(TensorError)
        -> [UInt8]
    {
        var integers = [T]()
        integers.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            guard let exact = T(exactly: value) else {
                throw .notRepresentable(index: index, value: value, dtype: T.dtype)
            }
            integers.append(exact)
        }
        return encode(integers) { $0 }
    }
}
