import CUDADriver
import STATensors

/// Why a CUDA STA kernel could not be built or launched. Each case's `description` names what was wrong
/// and what is allowed.
public enum STAKernelError: Error, Sendable, CustomStringConvertible {
    /// The head dimension is not one the kernel is compiled for.
    case unsupportedHeadDim(Int, allowed: [Int])
    /// The storage dtype is not one the kernel reads.
    case unsupportedDType(DType, allowed: [DType])
    /// The device is older than the kernel's minimum compute capability.
    case unsupportedDevice(architecture: String, minimum: String)
    /// The Hopper kernel runs only on compute capability 9.0 (wgmma, TMA and setmaxnreg exist only there).
    case requiresHopper(architecture: String)
    /// The kernel needs more shared memory per block than the device allows.
    case sharedMemoryTooSmall(needed: Int, available: Int)
    /// A launch parameter is outside its range (`what` names it, `allowed` says the range).
    case invalidParameter(what: String, value: String, allowed: String)
    /// A buffer is smaller than the tensor it must hold.
    case bufferTooSmall(name: String, byteCount: Int, needed: Int)
    /// A buffer lives on another device than the kernel.
    case foreignBuffer(name: String)
    /// The CUDA driver or NVRTC failed.
    case driver(CUDAError)

    public var description: String {
        switch self {
        case let .unsupportedHeadDim(dim, allowed):
            return "head dimension \(dim) is not supported; allowed: \(allowed.map(String.init).joined(separator: ", "))"
        case let .unsupportedDType(dtype, allowed):
            return "dtype \(dtype) is not supported by the CUDA kernel; allowed: "
                + allowed.map(\.description).joined(separator: ", ")
        case let .unsupportedDevice(architecture, minimum):
            return "the device is \(architecture); the kernel needs \(minimum) or newer"
        case let .requiresHopper(architecture):
            return "the Hopper STA kernel needs an sm_90 GPU (H100, H200, GH200); this device is \(architecture). "
                + "Use the portable kernel (STAForwardKernel, sm_80 and newer) instead"
        case let .sharedMemoryTooSmall(needed, available):
            return "the kernel needs \(needed) bytes of shared memory per block; the device allows \(available)"
        case let .invalidParameter(what, value, allowed):
            return "\(what) is \(value); allowed: \(allowed)"
        case let .bufferTooSmall(name, byteCount, needed):
            return "buffer \(name) holds \(byteCount) bytes; it must hold at least \(needed)"
        case let .foreignBuffer(name):
            return "buffer \(name) lives on another device than the kernel; allocate it in the kernel's context"
        case let .driver(error):
            return error.description
        }
    }
}
