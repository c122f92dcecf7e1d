/// Why a CUDA driver or NVRTC operation failed. Each case's `description` names the call or the
/// library that failed and, where the driver or NVRTC says why, its words.
public enum CUDAError: Error, Sendable, CustomStringConvertible {
    /// No CUDA driver library could be opened; the text lists every path tried and why it failed.
    case driverNotFound(String)
    /// The driver loaded but offers no usable device (cuInit failed, no devices, or a bad ordinal).
    case noDevice(String)
    /// No NVRTC library could be opened; the text lists the paths tried.
    case nvrtcNotFound(String)
    /// A driver call returned `code`; `name` and `message` come from cuGetErrorName and cuGetErrorString.
    case call(function: String, code: Int32, name: String, message: String)
    /// An NVRTC call returned `code`; `message` comes from nvrtcGetErrorString.
    case nvrtc(function: String, code: Int32, message: String)
    /// NVRTC rejected the source; `log` is NVRTC's compile log.
    case compile(sourceName: String, log: String)
    /// A loaded library lacks a symbol this package needs (a driver or NVRTC older than the call).
    case missingSymbol(library: String, symbol: String)
    /// An argument was outside what the operation allows; checked before any driver call.
    case invalidArgument(function: String, message: String)
    /// An optional CUDA library (cuBLAS) could not be opened; the text lists the paths tried.
    case libraryNotFound(library: String, tried: String)

    public var description: String {
        switch self {
        case .driverNotFound(let tried):
            return "no CUDA driver found: \(tried)"
        case .noDevice(let reason):
            return "no usable CUDA device: \(reason)"
        case .nvrtcNotFound(let tried):
            return "NVRTC (the CUDA runtime compiler) could not be loaded: \(tried)"
        case .call(let function, let code, let name, let message):
            return "\(function) failed with \(name) (\(code)): \(message)"
        case .nvrtc(let function, let code, let message):
            return "\(function) failed with NVRTC error \(code): \(message)"
        case .compile(let sourceName, let log):
            let trimmed = log.trimmingTrailingWhitespace
            return "NVRTC could not compile \(sourceName):\n"
                + (trimmed.isEmpty ? "(NVRTC gave no log)" : trimmed)
        case .missingSymbol(let library, let symbol):
            return "\(library) does not export \(symbol); this CUDA driver or NVRTC is too old for the call"
        case .invalidArgument(let function, let message):
            return "\(function): \(message)"
        case .libraryNotFound(let library, let tried):
            return "\(library) could not be loaded: \(tried)"
        }
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var view = Substring(self)
        while let last = view.last, last.isWhitespace || last == "\0" { view.removeLast() }
        return String(view)
    }
}
