/// A `CUtensorMap`: the 128-byte descriptor through which Hopper and later GPUs copy tiles between
/// global and shared memory (TMA), built by cuTensorMapEncodeTiled. Pass it to a kernel by value
/// (`KernelArguments.append(_:)`, a `const __grid_constant__ CUtensorMap` parameter).
///
/// Dimensions are listed innermost (contiguous) first, as cuda.h does.
public struct TensorMap: Sendable, Equatable {
    public static let byteCount = 128
    public static let alignment = 64

    /// The encoded descriptor.
    public let bytes: [UInt8]

    /// CUtensorMapDataType values (cuda.h): FLOAT16 = 6, FLOAT32 = 7, BFLOAT16 = 9.
    public enum ElementType: Int32, Sendable {
        case float16 = 6
        case float32 = 7
        case bfloat16 = 9

        public var byteCount: Int { self == .float32 ? 4 : 2 }
    }

    /// CUtensorMapSwizzle values (cuda.h): NONE = 0, 32B = 1, 64B = 2, 128B = 3.
    public enum Swizzle: Int32, Sendable {
        case none = 0
        case bytes32 = 1
        case bytes64 = 2
        case bytes128 = 3

        /// The swizzle span in bytes; the box's inner dimension may be at most this wide. Nil for none.
        public var spanBytes: Int? {
            switch self {
            case .none: nil
            case .bytes32: 32
            case .bytes64: 64
            case .bytes128: 128
            }
        }
    }

    /// CUtensorMapL2promotion values (cuda.h): NONE = 0, L2_64B = 1, L2_128B = 2, L2_256B = 3.
    public enum L2Promotion: Int32, Sendable {
        case none = 0
        case bytes64 = 1
        case bytes128 = 2
        case bytes256 = 3
    }

    /// CU_TENSOR_MAP_INTERLEAVE_NONE; interleaved layouts are not offered.
    static let interleaveNone: Int32 = 0
    /// CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE: out-of-bounds elements read as zero.
    static let outOfBoundsFillNone: Int32 = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Encodes a tiled map of a `dimensions.count`-rank tensor (1 to 5) at `globalAddress`.
    ///
    /// - Parameters:
    ///   - dimensions: elements per axis, innermost first, each in 1...2³².
    ///   - strideBytes: byte stride of axes 1..<rank (rank − 1 values), each a multiple of 16 below 2⁴⁰.
    ///   - boxDimensions: the tile copied per TMA operation, elements per axis, each in 1...256; the
    ///     inner box must span a multiple of 16 bytes, and at most the swizzle span when swizzled.
    /// - Throws: `invalidArgument` when a rule above (or 16-byte alignment of `globalAddress`) is broken,
    ///   `missingSymbol` when the driver predates CUDA 12, `call` when the driver rejects the map.
    public static func tiled(
        context: CUDAContext, elementType: ElementType, globalAddress: UInt64,
        dimensions: [Int], strideBytes: [Int], boxDimensions: [Int],
        swizzle: Swizzle = .bytes128, l2Promotion: L2Promotion = .bytes128
    ) throws(CUDAError) -> TensorMap {
        try validateTiled(
            elementType: elementType, globalAddress: globalAddress, dimensions: dimensions,
            strideBytes: strideBytes, boxDimensions: boxDimensions, swizzle: swizzle)
        let driver = context.driver
        guard let encode = driver.cuTensorMapEncodeTiled else {
            throw .missingSymbol(library: driver.library.path, symbol: "cuTensorMapEncodeTiled")
        }
        try context.makeCurrent()
        let storage = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        let globalDimensions = dimensions.map { UInt64($0) }
        let globalStrides = strideBytes.map { UInt64($0) }
        let box = boxDimensions.map { UInt32($0) }
        let elementStrides = [UInt32](repeating: 1, count: dimensions.count)
        let result = encode(
            storage, elementType.rawValue, UInt32(dimensions.count),
            UnsafeMutableRawPointer(bitPattern: UInt(globalAddress)),
            globalDimensions, globalStrides.isEmpty ? nil : globalStrides, box, elementStrides,
            interleaveNone, swizzle.rawValue, l2Promotion.rawValue, outOfBoundsFillNone)
        try driver.check(result, "cuTensorMapEncodeTiled")
        return TensorMap(bytes: Array(UnsafeRawBufferPointer(start: storage, count: byteCount)))
    }

    /// `tiled(context:…)` for a tensor stored in `buffer` from `byteOffset` on; also checks that the
    /// tensor's last element lies inside the buffer.
    public static func tiled(
        buffer: DeviceBuffer, byteOffset: Int = 0, elementType: ElementType,
        dimensions: [Int], strideBytes: [Int], boxDimensions: [Int],
        swizzle: Swizzle = .bytes128, l2Promotion: L2Promotion = .bytes128
    ) throws(CUDAError) -> TensorMap {
        let address = try buffer.address(byteOffset: byteOffset)
        try validateTiled(
            elementType: elementType, globalAddress: address, dimensions: dimensions, strideBytes: strideBytes,
            boxDimensions: boxDimensions, swizzle: swizzle)
        // The byte just past the last element: inner extent plus the outer axes' (size − 1) · stride.
        var end = dimensions[0].multipliedReportingOverflow(by: elementType.byteCount)
        for (size, stride) in zip(dimensions.dropFirst(), strideBytes) where !end.overflow {
            let step = (size - 1).multipliedReportingOverflow(by: stride)
            let sum = end.partialValue.addingReportingOverflow(step.partialValue)
            end = (sum.partialValue, step.overflow || sum.overflow)
        }
        guard !end.overflow, end.partialValue <= buffer.byteCount - byteOffset else {
            throw .invalidArgument(
                function: "TensorMap.tiled(buffer:)",
                message: "the tensor spans \(end.overflow ? "more than Int.max" : "\(end.partialValue)") bytes "
                    + "from byte offset \(byteOffset), beyond the buffer's \(buffer.byteCount) bytes")
        }
        return try tiled(
            context: buffer.context, elementType: elementType, globalAddress: address,
            dimensions: dimensions, strideBytes: strideBytes, boxDimensions: boxDimensions,
            swizzle: swizzle, l2Promotion: l2Promotion)
    }

    /// The rules of cuTensorMapEncodeTiled that can be checked without the driver.
    static func validateTiled(
        elementType: ElementType, globalAddress: UInt64, dimensions: [Int], strideBytes: [Int],
        boxDimensions: [Int], swizzle: Swizzle
    ) throws(CUDAError) {
        func fail(_ message: String) -> CUDAError { .invalidArgument(function: "TensorMap.tiled", message: message) }
        let rank = dimensions.count
        guard (1...5).contains(rank) else { throw fail("rank is \(rank); a tensor map has 1 to 5 dimensions") }
        guard strideBytes.count == rank - 1 else {
            throw fail("\(strideBytes.count) strides given for rank \(rank); give rank − 1 (axes 1 and up)")
        }
        guard boxDimensions.count == rank else {
            throw fail("\(boxDimensions.count) box dimensions given for rank \(rank); give one per axis")
        }
        guard globalAddress % 16 == 0 else {
            throw fail("global address 0x\(String(globalAddress, radix: 16)) is not 16-byte aligned")
        }
        for (axis, size) in dimensions.enumerated() where size < 1 || UInt64(size) > (1 << 32) {
            throw fail("dimension \(axis) is \(size); each must be in 1...2^32")
        }
        for (index, stride) in strideBytes.enumerated() where stride < 0 || stride % 16 != 0 || stride >= (1 << 40) {
            throw fail("stride of axis \(index + 1) is \(stride) bytes; each must be a multiple of 16 below 2^40")
        }
        for (axis, size) in boxDimensions.enumerated() where !(1...256).contains(size) {
            throw fail("box dimension \(axis) is \(size); each must be in 1...256")
        }
        let innerBoxBytes = boxDimensions[0] * elementType.byteCount
        guard innerBoxBytes % 16 == 0 else {
            throw fail("the box's inner dimension spans \(innerBoxBytes) bytes; it must be a multiple of 16")
        }
        if let span = swizzle.spanBytes, innerBoxBytes > span {
            throw fail("the box's inner dimension spans \(innerBoxBytes) bytes, more than the \(span)-byte swizzle")
        }
    }
}
