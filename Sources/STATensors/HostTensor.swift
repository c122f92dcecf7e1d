/// A dense tensor in host memory: a shape, a dtype and the elements' little-endian bytes, row-major
/// (C order, last axis fastest).
///
/// Storage is a `[UInt8]`, so `HostTensor` is a value type with copy-on-write: copying a tensor is O(1)
/// until one copy is mutated. The bytes are exactly `elementCount · dtype.byteCount` long, with no
/// padding or alignment guarantee beyond `[UInt8]`'s. A shape of `[]` is a scalar (one element).
public struct HostTensor: Hashable, Sendable, CustomStringConvertible {
    /// Size of each axis, slowest-varying first.
    public let shape: [Int]
    public let dtype: DType
    /// The elements, little-endian, `elementCount · dtype.byteCount` bytes.
    public private(set) var bytes: [UInt8]

    /// Wraps `bytes` (little-endian elements, C order). Throws when the shape is invalid or the byte count
    /// differs from `elementCount · dtype.byteCount`. Cost: O(1) (the array is not copied).
    public init(shape: [Int], dtype: DType, bytes: [UInt8]) throws(TensorError) {
        let count = try Self.elementCount(of: shape)
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow else { throw .invalidShape(shape) }
        guard bytes.count == needed else {
            throw .byteCountMismatch(shape: shape, dtype: dtype, expected: needed, actual: bytes.count)
        }
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    /// A tensor of zeros (all-zero bytes: +0.0, 0, false). Cost: O(bytes).
    public init(zeros shape: [Int], dtype: DType) throws(TensorError) {
        let count = try Self.elementCount(of: shape)
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow else { throw .invalidShape(shape) }
        try self.init(shape: shape, dtype: dtype, bytes: [UInt8](repeating: 0, count: needed))
    }

    /// Number of elements, ∏ shape (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// The same bytes under a new shape with the same element count. Cost: O(1).
    public func reshaped(_ newShape: [Int]) throws(TensorError) -> HostTensor {
        let count = try Self.elementCount(of: newShape)
        guard count == elementCount else {
            throw .elementCountMismatch(shape: newShape, expected: count, actual: elementCount)
        }
        return try HostTensor(shape: newShape, dtype: dtype, bytes: bytes)
    }

    /// Calls `body` with the element bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        // `Array.withUnsafeBytes` rethrows untyped; route the typed error through a Result.
        let result: Result<R, E> = bytes.withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public var description: String {
        "HostTensor(\(dtype), shape \(shape.map(String.init).joined(separator: "×")))"
    }

    /// ∏ shape, validating that no dimension is negative and the product does not overflow.
    static func elementCount(of shape: [Int]) throws(TensorError) -> Int {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { throw .invalidShape(shape) }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw .invalidShape(shape) }
            count = product
        }
        return count
    }
}
