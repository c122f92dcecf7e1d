/// The arguments of one kernel launch, packed as the kernel's parameter buffer lays them out: each
/// argument at the next offset that is a multiple of its alignment, in the order of the kernel's
/// parameters.
///
/// At launch the bytes are copied into 64-byte-aligned storage and the driver gets one pointer per
/// argument (cuLaunchKernel's `kernelParams`); that storage lives for the duration of the call. Buffers
/// appended are retained by the value so they outlive the launch.
public struct KernelArguments: Sendable {
    /// The packed bytes (padding between arguments is zero).
    public private(set) var bytes: [UInt8] = []
    /// The byte offset of each argument in `bytes`.
    public private(set) var offsets: [Int] = []
    /// The size in bytes of each argument.
    public private(set) var sizes: [Int] = []
    /// The largest alignment of any argument (at least 1).
    public private(set) var alignment: Int = 1
    private var retainedBuffers: [DeviceBuffer] = []

    public init() {}

    /// The number of arguments.
    public var count: Int { offsets.count }

    /// Appends `buffer`'s device address (a pointer parameter, 8 bytes).
    public mutating func append(_ buffer: DeviceBuffer) {
        retainedBuffers.append(buffer)
        append(value: buffer.address)
    }

    public mutating func append(_ value: Int32) { append(value: value) }
    public mutating func append(_ value: UInt32) { append(value: value) }
    public mutating func append(_ value: Int64) { append(value: value) }
    public mutating func append(_ value: UInt64) { append(value: value) }
    public mutating func append(_ value: Float) { append(value: value) }
    public mutating func append(_ value: Double) { append(value: value) }

    /// Appends a by-value `CUtensorMap` parameter (128 bytes, 64-byte aligned).
    public mutating func append(_ map: TensorMap) {
        map.bytes.withUnsafeBytes { appendUnchecked($0, alignment: TensorMap.alignment) }
    }

    /// Appends any plain value with its natural size and alignment (a scalar or a C-layout struct).
    public mutating func append<T: BitwiseCopyable>(value: T) {
        withUnsafeBytes(of: value) { appendUnchecked($0, alignment: MemoryLayout<T>.alignment) }
    }

    /// Appends raw bytes for a by-value parameter (e.g. a struct) that must start at a multiple of
    /// `alignment` bytes. Throws `invalidArgument` unless `alignment` is a power of two in 1...4096 and
    /// `bytes` is non-empty.
    public mutating func append(bytes raw: UnsafeRawBufferPointer, alignment: Int) throws(CUDAError) {
        guard alignment >= 1, alignment <= 4096, alignment & (alignment - 1) == 0 else {
            throw .invalidArgument(
                function: "KernelArguments.append(bytes:alignment:)",
                message: "alignment \(alignment) is not a power of two in 1...4096")
        }
        guard raw.count > 0 else {
            throw .invalidArgument(function: "KernelArguments.append(bytes:alignment:)", message: "no bytes given")
        }
        appendUnchecked(raw, alignment: alignment)
    }

    private mutating func appendUnchecked(_ raw: UnsafeRawBufferPointer, alignment: Int) {
        let offset = (bytes.count + alignment - 1) & ~(alignment - 1)
        bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count))
        bytes.append(contentsOf: raw)
        offsets.append(offset)
        sizes.append(raw.count)
        self.alignment = max(self.alignment, alignment)
    }

    /// Calls `body` with the `void**` array cuLaunchKernel expects (nil when there are no arguments).
    /// The pointers are valid only during the call.
    func withParameterPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> R) -> R {
        guard !offsets.isEmpty else { return body(nil) }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        defer { storage.deallocate() }
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { storage.copyMemory(from: base, byteCount: source.count) }
        }
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: offsets.count)
        defer { pointers.deallocate() }
        for (index, offset) in offsets.enumerated() { pointers[index] = storage + offset }
        return withExtendedLifetime(retainedBuffers) { body(pointers) }
    }
}
