/// A marker in a stream's work, used to time device work (cuEventCreate with default flags, so it
/// records timestamps). Destroyed in `deinit`.
public final class CUDAEvent: @unchecked Sendable {
    public let context: CUDAContext
    let handle: CUhandle

    public init(context: CUDAContext) throws(CUDAError) {
        self.context = context
        try context.makeCurrent()
        var event: CUhandle? = nil
        try context.driver.check(context.driver.cuEventCreate(&event, 0), "cuEventCreate")
        guard let event else {
            throw .invalidArgument(function: "cuEventCreate", message: "the driver returned no event")
        }
        handle = event
    }

    deinit {
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = context.driver.cuEventDestroy(handle)
    }

    /// Records the event after the work queued so far on `stream` (nil: the legacy default stream).
    public func record(on stream: CUDAStream? = nil) throws(CUDAError) {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuEventRecord(handle, stream?.handle), "cuEventRecord")
    }

    /// Waits until the work before the event's last recording has finished.
    public func synchronize() throws(CUDAError) {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds of device time from `start`'s recording to this event's (resolution about 0.5 µs).
    /// Both events must have been recorded and completed (call `synchronize()` first).
    public func milliseconds(since start: CUDAEvent) throws(CUDAError) -> Float {
        try context.makeCurrent()
        var milliseconds: Float = 0
        try context.driver.check(
            context.driver.cuEventElapsedTime(&milliseconds, start.handle, handle), "cuEventElapsedTime")
        return milliseconds
    }
}
