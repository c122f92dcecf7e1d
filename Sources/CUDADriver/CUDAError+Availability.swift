extension CUDAError {
    /// Whether the failure is something missing on this machine rather than a call that failed: no driver,
    /// no device, no NVRTC or optional library, or a symbol an older driver or NVRTC lacks. Front ends map
    /// it to "unavailable" (the `sta` tool's exit status 69).
    public var isUnavailable: Bool {
        switch self {
        case .driverNotFound, .noDevice, .nvrtcNotFound, .libraryNotFound, .missingSymbol: return true
        case .call, .nvrtc, .compile, .invalidArgument: return false
        }
    }
}
