import CUDADriver

extension STAKernelError {
    /// Whether the failure is a device that cannot run the kernel (too old, not Hopper, too little shared
    /// memory) or a library missing on this machine, rather than a failed call or a bad argument.
    public var isUnavailable: Bool {
        switch self {
        case .unsupportedDevice, .requiresHopper, .sharedMemoryTooSmall: return true
        case let .driver(error): return error.isUnavailable
        case .unsupportedHeadDim, .unsupportedDType, .invalidParameter, .bufferTooSmall, .foreignBuffer: return false
        }
    }
}
