/// Global memory on one device (cuMemAlloc_v2), freed in `deinit` (cuMemFree_v2) unless it was
/// borrowed from another owner (`init(borrowing:byteCount:context:)`).
///
/// Copies are synchronous with respect to the host and run on the legacy default stream, which waits
/// for work on every `CUDAStream` of the context (they are created blocking), so a download after a
/// launch sees the launch's results.
public final class DeviceBuffer: @unchecked Sendable {
    public let context: CUDAContext
    /// The buffer's size in bytes. May be 0, in which case `address` is 0.
    public let byteCount: Int
    /// The device address of the first byte (a CUdeviceptr).
    public let address: UInt64
    /// Whether `deinit` frees the memory: true for allocations, false for borrowed addresses.
    public let ownsMemory: Bool

    /// Allocates `byteCount` bytes (uninitialised). Throws `invalidArgument` for a negative size and
    /// `call` when the driver cannot allocate (CUDA_ERROR_OUT_OF_MEMORY).
    public init(context: CUDAContext, byteCount: Int) throws(CUDAError) {
        guard byteCount >= 0 else {
            throw .invalidArgument(
                function: "DeviceBuffer.init", message: "byteCount is \(byteCount); it must be 0 or more")
        }
        self.context = context
        self.byteCount = byteCount
        self.ownsMemory = true
        if byteCount == 0 {
            address = 0
            return
        }
        try context.makeCurrent()
        var pointer: CUdeviceptr = 0
        try context.driver.check(context.driver.cuMemAlloc(&pointer, byteCount), "cuMemAlloc_v2")
        address = pointer
    }

    /// Allocates a buffer holding exactly `values`.
    public convenience init<T: BitwiseCopyable>(context: CUDAContext, copying values: [T]) throws(CUDAError) {
        let (bytes, overflow) = values.count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow else {
            throw .invalidArgument(
                function: "DeviceBuffer.init", message: "\(values.count) elements overflow Int bytes")
        }
        try self.init(context: context, byteCount: bytes)
        try upload(values)
    }

    /// Wraps `byteCount` bytes at device address `address`, owned by someone else (another library's
    /// allocator, e.g. PyTorch's, in the same primary context): nothing is allocated, and `deinit` does
    /// not free it. The owner must keep the memory alive while work queued on it runs.
    ///
    /// Throws `invalidArgument` for a negative size, or a zero address with a non-zero size. The
    /// address is not checked against the driver. Cost: none.
    public init(borrowing address: UInt64, byteCount: Int, context: CUDAContext) throws(CUDAError) {
        guard byteCount >= 0 else {
            throw .invalidArgument(
                function: "DeviceBuffer.init(borrowing:)", message: "byteCount is \(byteCount); it must be 0 or more")
        }
        guard address != 0 || byteCount == 0 else {
            throw .invalidArgument(
                function: "DeviceBuffer.init(borrowing:)",
                message: "the device address is 0 (null) for \(byteCount) bytes; give the address of live device memory")
        }
        self.context = context
        self.byteCount = byteCount
        self.address = address
        self.ownsMemory = false
    }

    deinit {
        guard ownsMemory, address != 0 else { return }
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = context.driver.cuMemFree(address)
    }

    /// The device address `byteOffset` bytes into the buffer (for kernel arguments that point inside it).
    public func address(byteOffset: Int) throws(CUDAError) -> UInt64 {
        guard byteOffset >= 0, byteOffset <= byteCount else {
            throw .invalidArgument(
                function: "DeviceBuffer.address",
                message: "byte offset \(byteOffset) is outside the buffer's 0...\(byteCount)")
        }
        return address + UInt64(byteOffset)
    }

    private func checkRange(_ function: String, offset: Int, count: Int) throws(CUDAError) {
        guard offset >= 0, count >= 0, offset <= byteCount, count <= byteCount - offset else {
            throw .invalidArgument(
                function: function,
                message: "\(count) bytes at byte offset \(offset) do not fit in a buffer of \(byteCount) bytes")
        }
    }

    /// Copies `host` into the buffer starting `byteOffset` bytes in (cuMemcpyHtoD_v2).
    public func copy(from host: UnsafeRawBufferPointer, byteOffset: Int = 0) throws(CUDAError) {
        try checkRange("DeviceBuffer.copy(from:)", offset: byteOffset, count: host.count)
        guard host.count > 0, let base = host.baseAddress else { return }
        try context.makeCurrent()
        try context.driver.check(
            context.driver.cuMemcpyHtoD(address + UInt64(byteOffset), base, host.count), "cuMemcpyHtoD_v2")
    }

    /// Copies `host.count` bytes starting `byteOffset` bytes into the buffer to `host` (cuMemcpyDtoH_v2).
    public func copy(to host: UnsafeMutableRawBufferPointer, byteOffset: Int = 0) throws(CUDAError) {
        try checkRange("DeviceBuffer.copy(to:)", offset: byteOffset, count: host.count)
        guard host.count > 0, let base = host.baseAddress else { return }
        try context.makeCurrent()
        try context.driver.check(
            context.driver.cuMemcpyDtoH(base, address + UInt64(byteOffset), host.count), "cuMemcpyDtoH_v2")
    }

    /// Sets every byte of the buffer to `byte` (cuMemsetD8_v2; ordered on the legacy default stream).
    public func fill(byte: UInt8) throws(CUDAError) {
        guard byteCount > 0 else { return }
        try context.makeCurrent()
        try context.driver.check(context.driver.cuMemsetD8(address, byte, byteCount), "cuMemsetD8_v2")
    }

    /// Copies `values` into the buffer starting `byteOffset` bytes in.
    public func upload<T: BitwiseCopyable>(_ values: [T], byteOffset: Int = 0) throws(CUDAError) {
        var failure: CUDAError? = nil
        values.withUnsafeBytes { bytes in
            do throws(CUDAError) { try copy(from: bytes, byteOffset: byteOffset) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads `count` values of `T` starting `byteOffset` bytes into the buffer.
    public func download<T: BitwiseCopyable>(
        as type: T.Type, count: Int, byteOffset: Int = 0
    ) throws(CUDAError) -> [T] {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard count >= 0, !overflow else {
            throw .invalidArgument(
                function: "DeviceBuffer.download", message: "count \(count) is negative or too large")
        }
        try checkRange("DeviceBuffer.download", offset: byteOffset, count: bytes)
        var failure: CUDAError? = nil
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(CUDAError) {
                try copy(to: UnsafeMutableRawBufferPointer(buffer), byteOffset: byteOffset)
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return values
    }
}
