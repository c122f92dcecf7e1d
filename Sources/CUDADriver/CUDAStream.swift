/// A queue of device work (cuStreamCreate, blocking: it synchronises with the legacy default stream).
/// Destroyed in `deinit`; work already queued still completes.
public final class CUDAStream: @unchecked Sendable {
    public let context: CUDAContext
    let handle: CUhandle

    public init(context: CUDAContext) throws(CUDAError) {
        self.context = context
        try context.makeCurrent()
        var stream: CUhandle? = nil
        try context.driver.check(context.driver.cuStreamCreate(&stream, 0), "cuStreamCreate")
        guard let stream else {
            throw .invalidArgument(function: "cuStreamCreate", message: "the driver returned no stream")
        }
        handle = stream
    }

    deinit {
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = context.driver.cuStreamDestroy(handle)
    }

    /// Waits until all work queued on the stream has finished (cuStreamSynchronize).
    public func synchronize() throws(CUDAError) {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }
}
