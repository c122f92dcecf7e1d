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

    public var description: String {
        switch self {
        case .cpu(let threads): return "CPU (\(threads.map { "\($0) threads" } ?? "all cores"))"
        case .cuda(let backend): return "CUDA \(backend.context.deviceName) (\(backend.context.architecture))"
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
    private var kernels: [KernelKey: STAForwardKernel] = [:]

    private struct KernelKey: Hashable {
        let plan: AttentionPlan
        let headDim: Int
        let dtype: DType
    }

    public init(ordinal: Int, cache: KernelCache = KernelCache()) throws {
        self.context = try CUDAContext.open(device: ordinal)
        self.cache = cache
    }

    /// The forward kernel for `plan`, compiled or loaded on first use.
    public func forwardKernel(plan: AttentionPlan, headDim: Int, dtype: DType) throws -> STAForwardKernel {
        let key = KernelKey(plan: plan, headDim: headDim, dtype: dtype)
        if let kernel = kernels[key] { return kernel }
        let kernel = try STAForwardKernel(context: context, plan: plan, headDim: headDim, dtype: dtype, cache: cache)
        kernels[key] = kernel
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
