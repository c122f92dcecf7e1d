/// A queue of device work (cuStreamCreate, blocking: it synchronises with the legacy default stream).
/// Destroyed in `deinit` unless borrowed (`init(borrowing:context:)`); work already queued still completes.
public final class CUDAStream: @unchecked Sendable {
    public let context: CUDAContext
    let handle: CUhandle
    /// Whether `deinit` destroys the stream: true for streams created here, false for borrowed ones.
    public let ownsHandle: Bool

    public init(context: CUDAContext) throws(CUDAError) {
        self.context = context
        try context.makeCurrent()
        var stream: CUhandle? = nil
        try context.driver.check(context.driver.cuStreamCreate(&stream, 0), "cuStreamCreate")
        guard let stream else {
            throw .invalidArgument(function: "cuStreamCreate", message: "the driver returned no stream")
        }
        handle = stream
        ownsHandle = true
    }

    /// Wraps a stream created by someone else (a CUstream / cudaStream_t of the same context, e.g.
    /// PyTorch's current stream) without taking ownership: `deinit` does not destroy it. The owner must
    /// keep it alive while this object is used.
    ///
    /// Throws `invalidArgument` for handle 0: the legacy default stream is spelled `nil` where a stream
    /// is optional. The handle is not checked against the driver. Cost: none.
    public init(borrowing handle: UInt64, context: CUDAContext) throws(CUDAError) {
        guard let pointer = OpaquePointer(bitPattern: UInt(handle)) else {
            throw .invalidArgument(
                function: "CUDAStream.init(borrowing:)",
                message: "stream handle 0 is the legacy default stream; pass nil as the stream instead")
        }
        self.context = context
        self.handle = pointer
        self.ownsHandle = false
    }

    deinit {
        guard ownsHandle else { return }
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = context.driver.cuStreamDestroy(handle)
    }

    /// Waits until all work queued on the stream has finished (cuStreamSynchronize).
    public func synchronize() throws(CUDAError) {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }
}
