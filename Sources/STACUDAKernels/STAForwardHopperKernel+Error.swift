import CUDADriver
import STATensors

/// Why the Hopper STA kernel could not be built or launched. Each case's `description` names what was
/// wrong and what is allowed.
public enum STAHopperKernelError: Error, Sendable, CustomStringConvertible {
    /// The device is not compute capability 9.0 (H100, H200, GH200): wgmma, TMA and setmaxnreg exist
    /// only there.
    case requiresHopper(architecture: String)
    /// The head dimension is not one the kernel is written for.
    case unsupportedHeadDim(Int, allowed: [Int])
    /// The storage dtype is not one the kernel reads.
    case unsupportedDType(DType, allowed: [DType])
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
        case .requiresHopper(let architecture):
            return "the Hopper STA kernel needs an sm_90 GPU (H100, H200, GH200); this device is \(architecture). "
                + "Use the portable kernel (STAForwardKernel, sm_80 and newer) instead"
        case .unsupportedHeadDim(let dim, let allowed):
            return "head dimension \(dim) is not supported by the Hopper kernel; allowed: "
                + allowed.map(String.init).joined(separator: ", ")
        case .unsupportedDType(let dtype, let allowed):
            return "dtype \(dtype) is not supported by the Hopper kernel; allowed: "
                + allowed.map(\.description).joined(separator: ", ")
        case .sharedMemoryTooSmall(let needed, let available):
            return "the Hopper kernel needs \(needed) bytes of shared memory per block; the device allows \(available)"
        case .invalidParameter(let what, let value, let allowed):
            return "\(what) is \(value); allowed: \(allowed)"
        case .bufferTooSmall(let name, let byteCount, let needed):
            return "buffer \(name) holds \(byteCount) bytes; it must hold at least \(needed)"
        case .foreignBuffer(let name):
            return "buffer \(name) lives on another device than the kernel; allocate it in the kernel's context"
        case .driver(let error):
            return error.description
        }
    }
}
