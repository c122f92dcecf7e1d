import CUDADriver
import STACUDAKernels

/// A kernel that computes attention: the CPU kernel or one of the CUDA kernels.
public enum AttentionKernel: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The multicore SIMD CPU kernel (`CPUAttention`): f32, f16 and bf16, any head dim, both directions.
    case cpu
    /// The portable CUDA kernels (mma.sync, cp.async; `STAForwardKernel`, `STABackwardKernel`): sm_80 and
    /// newer, f16 and bf16, head dims 64 and 128, forward and backward.
    case portable
    /// The Hopper CUDA kernels (TMA, wgmma, warp specialisation; `STAForwardHopperKernel`,
    /// `STABackwardHopperKernel`): compute capability 9.x, f16 and bf16, head dims 64 and 128, forward and
    /// backward. Its backward accumulates dq with float32 atomics: not bit-reproducible across runs.
    case hopper

    public var description: String { rawValue }

    /// The passes the kernel implements.
    public var directions: [AttentionDirection] { [.forward, .backward] }

    /// Whether the kernel's `direction` pass writes the same bits on every run with the same inputs. Only
    /// the Hopper backward is not (its dq is summed by float32 atomics in no fixed order); ask for the
    /// portable kernel (`KernelPreference.portable`) when bit-reproducible gradients matter.
    public func isDeterministic(_ direction: AttentionDirection) -> Bool { !(self == .hopper && direction == .backward) }

    /// The kernels that run on a CUDA device, in the order automatic choice prefers them.
    public static let cudaKernelsByPreference: [AttentionKernel] = [.hopper, .portable]
}

/// Which pass of attention a call computes.
public enum AttentionDirection: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// Output and log-sum-exp from q, k, v.
    case forward = 0
    /// dq, dk, dv from q, k, v, the forward's output and log-sum-exp, and the output's gradient.
    case backward = 1

    public var description: String { self == .forward ? "forward" : "backward" }
}

/// What a caller asks for: a kernel by name, or the automatic choice.
public enum KernelPreference: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The fastest kernel that can run the call where it runs (the Hopper kernel on compute capability
    /// 9.x when it can run the call, else the portable one; the CPU kernel on the CPU).
    case automatic = "auto"
    /// ``AttentionKernel/cpu``.
    case cpu
    /// ``AttentionKernel/portable``.
    case portable
    /// ``AttentionKernel/hopper``.
    case hopper

    public var description: String { rawValue }

    /// Parses a kernel name, case-insensitively: "auto" (also "automatic" or empty), "cpu", "portable"
    /// (also "sm80", "sm_80") or "hopper" (also "sm90", "sm_90", "sm_90a"). Throws `invalidArgument`
    /// naming the allowed names otherwise.
    public init(name: String) throws(AttentionError) {
        switch name.lowercased() {
        case "auto", "automatic", "": self = .automatic
        case "cpu": self = .cpu
        case "portable", "sm80", "sm_80": self = .portable
        case "hopper", "sm90", "sm_90", "sm_90a": self = .hopper
        default:
            throw .invalidArgument(
                "kernel is \"\(name)\"; allowed: \"auto\", \"cpu\", \"portable\" (CUDA sm_80 and newer) or \"hopper\" (CUDA sm_90)")
        }
    }

    /// The kernel this preference names, nil for `automatic`.
    public var kernel: AttentionKernel? {
        switch self {
        case .automatic: return nil
        case .cpu: return .cpu
        case .portable: return .portable
        case .hopper: return .hopper
        }
    }
}

/// What the kernel choice needs to know of a CUDA device. Built from an open context, or by hand (to ask
/// what would run on a device that is not present).
public struct CUDADeviceProperties: Sendable, Equatable, CustomStringConvertible {
    /// The device ordinal (0, 1, …).
    public let ordinal: Int
    /// The device's name, e.g. "NVIDIA H200".
    public let name: String
    /// The major compute capability (9 for Hopper).
    public let computeCapabilityMajor: Int
    /// The minor compute capability.
    public let computeCapabilityMinor: Int
    /// The largest dynamic shared memory a block may opt into, in bytes.
    public let sharedMemoryPerBlockOptin: Int

    /// Properties given by hand (to ask what would run on a device that is not present).
    public init(ordinal: Int, name: String, computeCapability: (major: Int, minor: Int), sharedMemoryPerBlockOptin: Int) {
        self.ordinal = ordinal
        self.name = name
        self.computeCapabilityMajor = computeCapability.major
        self.computeCapabilityMinor = computeCapability.minor
        self.sharedMemoryPerBlockOptin = sharedMemoryPerBlockOptin
    }

    /// The properties of `context`'s device.
    public init(_ context: CUDAContext) {
        self.init(
            ordinal: context.deviceOrdinal, name: context.deviceName, computeCapability: context.computeCapability,
            sharedMemoryPerBlockOptin: context.maxSharedMemoryPerBlockOptin)
    }

    /// The compiler target, e.g. "sm_80", "sm_90a".
    public var architecture: String {
        CUDAContext.architecture(major: computeCapabilityMajor, minor: computeCapabilityMinor)
    }

    public var description: String { "\(name) (\(architecture))" }
}

/// Where a call runs, as the kernel choice sees it.
public enum AttentionDevice: Sendable, Equatable, CustomStringConvertible {
    /// The host's cores.
    case cpu
    /// A CUDA GPU with these properties.
    case cuda(CUDADeviceProperties)

    public var description: String {
        switch self {
        case .cpu: return "the CPU"
        case .cuda(let device): return "CUDA device \(device.ordinal), \(device)"
        }
    }
}
