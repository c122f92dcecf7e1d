import CUDADriver
import STAGeometry
import STATensors

/// Where attention runs.
public enum AttentionBackend: Sendable, CustomStringConvertible {
    /// The multicore SIMD CPU kernel; `threads` nil means all cores.
    case cpu(threads: Int?)
    /// A CUDA GPU, through the engine that keeps its context and compiled kernels.
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

    /// `cpu`, or the CUDA kernel a bf16 forward call runs (`portable`, `hopper`).
    public var shortName: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let backend): return backend.kernelName
        }
    }

    public var description: String {
        switch self {
        case .cpu(let threads): return "CPU (\(threads.map { "\($0) threads" } ?? "all cores"))"
        case .cuda(let backend):
            return "CUDA \(backend.properties.name) (\(backend.properties.architecture), \(backend.kernelName) kernel)"
        }
    }
}

/// One CUDA device of a `CUDAEngine`, with the kernel calls on it should prefer. Cheap to copy; the
/// engine keeps the context and the compiled kernels.
public struct CUDABackend: Sendable {
    /// The engine that owns the device's context and kernels.
    public let engine: CUDAEngine
    /// The device's primary context (current on the thread that created this value).
    public let context: CUDAContext
    /// What the kernel choice knows of the device.
    public let properties: CUDADeviceProperties
    /// The kernel calls ask for (`automatic` by default).
    public let kernel: KernelPreference

    /// Device `ordinal` of `engine`. Throws `cuda` when there is no driver or no such device.
    public init(ordinal: Int = 0, kernel: KernelPreference = .automatic, engine: CUDAEngine = .shared) throws(AttentionError) {
        self.engine = engine
        self.context = try engine.context(device: ordinal)
        self.properties = CUDADeviceProperties(context)
        self.kernel = kernel
    }

    /// The device ordinal.
    public var ordinal: Int { context.deviceOrdinal }

    /// The kernel a forward call in bf16 at head dim 128 runs here, by name (for reports).
    public var kernelName: String {
        if let chosen = kernel.kernel { return chosen.rawValue }
        return KernelSelection.automaticKernel(.forward, on: properties)?.rawValue ?? "none"
    }

    /// Uploads `values` into a new device buffer (at least one byte).
    public func upload<T>(_ values: [T]) throws -> DeviceBuffer { try HostCopy.upload(values, context: context) }

    /// Copies `count` elements of type `T` back from `buffer`.
    public func download<T>(_ buffer: DeviceBuffer, count: Int, as type: T.Type) throws -> [T] {
        try HostCopy.download(buffer, count: count, as: type)
    }
}
