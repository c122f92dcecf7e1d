import CUDADriver
import STACPUKernels
import STACUDAKernels
import STAGeometry
import STATensors

/// Where attention runs.
public enum AttentionBackend: Sendable, CustomStringConvertible {
    /// The multicore SIMD CPU kernel; `threads` nil means all cores.
    case cpu(threads: Int?)
    /// A CUDA GPU, through a `CUDABackend` that keeps its context and compiled kernels.
    case cuda(CUDABackend)

    /// The first CUDA GPU if a driver and device are present, else the CPU. `reason` says why the GPU was
    /// not taken (nil when it was).
    public static func best() -> (backend: AttentionBackend, reason: String?) {
        do {
            return (.cuda(try CUDABackend(ordinal: 0)), nil)
        } catch {
            return (.cpu(threads: nil), "\(error)")
        }
    }

    /// `cpu`, or the CUDA kernel that runs (`portable`, `hopper`).
    public var shortName: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let backend): return "\(backend.kernelChoice.resolved(for: backend.context))"
        }
    }

    public var description: String {
        switch self {
        case .cpu(let threads): return "CPU (\(threads.map { "\($0) threads" } ?? "all cores"))"
        case .cuda(let backend):
            return "CUDA \(backend.context.deviceName) (\(backend.context.architecture), \(backend.kernelChoice.resolved(for: backend.context)) kernel)"
        }
    }
}

/// A CUDA device with its kernel cache and the kernels compiled for it so far.
///
/// Compiling a specialisation costs NVRTC time once per (plan, head dim, dtype) per machine; later runs
/// load it from the disk cache. Not safe for concurrent use from several threads.
public final class CUDABackend: @unchecked Sendable {
    public let context: CUDAContext
    public let cache: KernelCache
    /// Which kernel `forwardKernel` builds: by default the Hopper kernel on sm_90, else the portable one.
    public let kernelChoice: ForwardKernelChoice
    private var kernels: [KernelKey: any AttentionForwardKernel] = [:]
    private var backwardKernels: [KernelKey: STABackwardKernel] = [:]

    private struct KernelKey: Hashable {
        let plan: AttentionPlan
        let headDim: Int
        let dtype: DType
        let choice: ForwardKernelChoice
    }

    public init(ordinal: Int, kernel: ForwardKernelChoice = .automatic, cache: KernelCache = KernelCache()) throws {
        self.context = try CUDAContext.open(device: ordinal)
        self.kernelChoice = kernel
        self.cache = cache
    }

    /// The forward kernel for `plan` (`choice` defaults to `kernelChoice`), compiled or loaded on first use.
    public func forwardKernel(
        plan: AttentionPlan, headDim: Int, dtype: DType, choice: ForwardKernelChoice? = nil
    ) throws -> any AttentionForwardKernel {
        let key = KernelKey(plan: plan, headDim: headDim, dtype: dtype, choice: choice ?? kernelChoice)
        if let kernel = kernels[key] { return kernel }
        let kernel = try key.choice.make(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        kernels[key] = kernel
        return kernel
    }

    /// The backward kernels for `plan` (portable, sm_80 and newer), compiled or loaded on first use.
    public func backwardKernel(plan: AttentionPlan, headDim: Int, dtype: DType) throws -> STABackwardKernel {
        let key = KernelKey(plan: plan, headDim: headDim, dtype: dtype, choice: .portable)
        if let kernel = backwardKernels[key] { return kernel }
        let kernel = try STABackwardKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        backwardKernels[key] = kernel
        return kernel
    }

    /// Uploads `values` into a new device buffer.
    public func upload<T>(_ values: [T]) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(context: context, byteCount: max(1, values.count * MemoryLayout<T>.stride))
        try values.withUnsafeBytes { try buffer.copy(from: $0) }
        return buffer
    }

    /// Copies `count` elements of type `T` back from `buffer`.
    public func download<T>(_ buffer: DeviceBuffer, count: Int, as: T.Type) throws -> [T] {
        try [T](unsafeUninitializedCapacity: count) { storage, initialized in
            try buffer.copy(to: UnsafeMutableRawBufferPointer(storage))
            initialized = count
        }
    }
}
