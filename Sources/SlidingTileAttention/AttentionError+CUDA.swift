import CUDADriver
import STACUDAKernels

extension AttentionError {
    /// `error` as an attention error whose message is `prefix` (when given) then the driver's words: kind
    /// `unavailable` when something is missing (`CUDAError.isUnavailable`), else `cuda`.
    init(_ error: CUDAError, prefix: String? = nil) {
        self.init(error.isUnavailable ? .unavailable : .cuda, prefix.map { "\($0): \(error)" } ?? error.description)
    }

    /// `error` as an attention error: kind `unavailable` when the device cannot run the kernel or a
    /// library is missing (`STAKernelError.isUnavailable`), else `cuda`.
    init(_ error: STAKernelError, prefix: String? = nil) {
        self.init(error.isUnavailable ? .unavailable : .cuda, prefix.map { "\($0): \(error)" } ?? error.description)
    }
}
