import CUDADriver
import STACUDAKernels
import STAGeometry
import STATensors
import Synchronization

/// The CUDA side of the package: one thread-safe owner of the devices' primary contexts, the compiled
/// kernels and the plans' device tables, with forward and backward on caller-owned device memory and a
/// stream. The `sta` tool, the C interface (and through it Python) and `SlidingTileAttention` all run
/// their CUDA work here.
///
/// - Contexts: the primary context of each device (the one the CUDA runtime, and so PyTorch, uses: its
///   device addresses are valid here), retained once on first use and kept for the engine's lifetime.
/// - Kernels: compiled by NVRTC (or read from `cache`) on first use and kept, keyed by device, plan
///   (layout and windows), head dim, dtype, kernel and direction. The plan's default valid text length is
///   not part of the key: the kernels read valid lengths at run time, so plans that differ only in it
///   share one kernel. A kernel is compiled under a lock, so two threads asking for the same one compile
///   it once; other threads wait meanwhile.
/// - Plan tables: the window tables live with each kernel; for a call without per-row lengths whose plan's
///   default differs from the kernel's, the engine passes a small device array of that length for every
///   row, made once per (device, length, batch) and kept.
/// - Every call checks its arguments and asks `KernelSelection` which kernel runs it before any device
///   work, so a refused call has touched nothing.
///
/// Thread safety: every method may be called from any thread.
public final class CUDAEngine: Sendable {
    /// The engine of the process: the one the C interface and `AttentionBackend.best()` use.
    public static let shared = CUDAEngine()

    /// Where compiled kernel images are kept across processes.
    public let cache: KernelCache

    private let contexts = Mutex<[Int: CUDAContext]>([:])
    private let kernels = Mutex<KernelTable>(KernelTable())
    private let uniformTextValid = Mutex<[UniformTextValidKey: DeviceBuffer]>([:])

    struct UniformTextValidKey: Hashable, Sendable {
        let device: Int
        let valid: Int
        let batch: Int
    }

    /// A compiled kernel's identity.
    struct KernelKey: Hashable, Sendable {
        let device: Int
        let layout: STALayout
        let windows: [Window]
        let windowIndexByHead: [Int32]
        let headDim: Int
        let dtype: DType
        let kernel: AttentionKernel
        let direction: AttentionDirection

        /// `layout` with every text token valid: the part of a layout a kernel is compiled for.
        static func normalised(_ layout: STALayout) -> STALayout {
            guard layout.text.valid != layout.text.count else { return layout }
            // Same canvas and tile, text.valid = text.count: valid by construction.
            return (try? STALayout(
                canvas: layout.canvas.extents, tile: layout.tile.extents, textCount: layout.text.count)) ?? layout
        }

        init(device: Int, plan: AttentionPlan, headDim: Int, dtype: DType, kernel: AttentionKernel, direction: AttentionDirection) {
            self.device = device
            self.layout = Self.normalised(plan.layout)
            self.windows = plan.windows
            self.windowIndexByHead = plan.windowIndexByHead
            self.headDim = headDim
            self.dtype = dtype
            self.kernel = kernel
            self.direction = direction
        }
    }

    struct KernelTable {
        var forward: [KernelKey: any AttentionForwardKernel] = [:]
        var backward: [KernelKey: any AttentionBackwardKernel] = [:]
        /// The exact-rows kernels that follow both directions (keyed as `.portable`, `.forward`).
        var exactRows: [KernelKey: STAExactRowsKernel] = [:]
    }

    /// An engine with its own contexts' kernels; `cache` defaults to the per-user disk cache.
    public init(cache: KernelCache = KernelCache()) {
        self.cache = cache
    }

    // MARK: Devices

    /// The primary context of device `ordinal`, retained on first use and kept; made current on the
    /// calling thread. Throws `invalidArgument` for a negative ordinal, `cuda` when there is no driver or
    /// no such device. Cost: cuInit and a retain on first use (tens to hundreds of ms), then a lookup.
    public func context(device ordinal: Int) throws(AttentionError) -> CUDAContext {
        guard ordinal >= 0 else { throw .invalidArgument("device is \(ordinal); give a CUDA device ordinal (0, 1, …)") }
        let result: Result<CUDAContext, CUDAError> = contexts.withLock { table in
            if let context = table[ordinal] { return .success(context) }
            do throws(CUDAError) {
                let context = try CUDAContext.open(device: ordinal)
                table[ordinal] = context
                return .success(context)
            } catch {
                return .failure(error)
            }
        }
        do throws(CUDAError) {
            let context = try result.get()
            try context.makeCurrent()
            return context
        } catch {
            throw AttentionError(error)
        }
    }

    /// What `KernelSelection` needs to know of device `ordinal` (opening its context if needed).
    public func properties(device ordinal: Int) throws(AttentionError) -> CUDADeviceProperties {
        CUDADeviceProperties(try context(device: ordinal))
    }

    /// The kernel `preference` runs `call` with on device `ordinal`; throws the message the call would
    /// give (see `KernelSelection.choose`).
    public func kernel(
        for call: AttentionCall, preference: KernelPreference, device ordinal: Int
    ) throws(AttentionError) -> AttentionKernel {
        try KernelSelection.checkCall(preference, call, onCUDA: true)
        return try KernelSelection.choose(preference, call, on: .cuda(properties(device: ordinal)))
    }

    // MARK: Kernels

    /// The forward kernel `kernel` for `call` on `context`, compiled or loaded on first use.
    func forwardKernel(
        _ kernel: AttentionKernel, for call: AttentionCall, context: CUDAContext
    ) throws(AttentionError) -> any AttentionForwardKernel {
        let cache = self.cache
        return try loaded(kernel, call, context, \.forward) { () throws(STAKernelError) -> any AttentionForwardKernel in
            kernel == .hopper
                ? try STAForwardHopperKernel(
                    context: context, plan: call.plan, headDim: call.headDim, dtype: call.dtype, cache: cache)
                : try STAForwardKernel(
                    context: context, plan: call.plan, headDim: call.headDim, dtype: call.dtype, cache: cache)
        }
    }

    /// The backward kernels `kernel` for `call` on `context`, compiled or loaded on first use.
    func backwardKernel(
        _ kernel: AttentionKernel, for call: AttentionCall, context: CUDAContext
    ) throws(AttentionError) -> any AttentionBackwardKernel {
        let cache = self.cache
        return try loaded(kernel, call, context, \.backward) { () throws(STAKernelError) -> any AttentionBackwardKernel in
            kernel == .hopper
                ? try STABackwardHopperKernel(
                    context: context, plan: call.plan, headDim: call.headDim, dtype: call.dtype, cache: cache)
                : try STABackwardKernel(
                    context: context, plan: call.plan, headDim: call.headDim, dtype: call.dtype, cache: cache)
        }
    }

    /// The exact-rows kernels (`STAExactRowsKernel`) for `call`'s plan, head dim and dtype on `context`,
    /// compiled or loaded on first use: they follow every forward and backward launch.
    func exactRowsKernel(for call: AttentionCall, context: CUDAContext) throws(AttentionError) -> STAExactRowsKernel {
        let cache = self.cache
        let forwardCall = AttentionCall(
            plan: call.plan, batch: call.batch, headDim: call.headDim, dtype: call.dtype, direction: .forward)
        return try loaded(.portable, forwardCall, context, \.exactRows, name: "the exact-rows kernels") { () throws(STAKernelError) in
            try STAExactRowsKernel(
                context: context, plan: call.plan, headDim: call.headDim, dtype: call.dtype, cache: cache)
        }
    }

    /// The kernel of `table` for (`kernel`, `call`, `context`'s device), made with `make` under the lock
    /// on first use. A failure is `cuda`, naming the kernel and what it was built for.
    private func loaded<Kernel: Sendable>(
        _ kernel: AttentionKernel, _ call: AttentionCall, _ context: CUDAContext,
        _ table: WritableKeyPath<KernelTable, [KernelKey: Kernel]>, name: String? = nil,
        make: () throws(STAKernelError) -> Kernel
    ) throws(AttentionError) -> Kernel {
        let key = KernelKey(
            device: context.deviceOrdinal, plan: call.plan, headDim: call.headDim, dtype: call.dtype, kernel: kernel,
            direction: call.direction)
        let result = kernels.withLock { kernels in
            lookUp(key, in: &kernels[keyPath: table], orMake: make)
        }
        do throws(STAKernelError) {
            return try result.get()
        } catch {
            let name = name ?? "the \(kernel) \(call.direction) kernel"
            throw AttentionError(error, prefix: "\(name) for \(call.dtype), head dim \(call.headDim)")
        }
    }

    /// The valid text lengths to launch `compiled` with for a call on `plan`: the caller's array, or nil
    /// when the kernel's default is the plan's, or else a device array holding the plan's default for each
    /// of `batch` rows (made once per device, length and batch, and kept).
    func textValid(
        _ given: DeviceBuffer?, plan: AttentionPlan, kernelPlan: AttentionPlan, batch: Int, context: CUDAContext
    ) throws(AttentionError) -> DeviceBuffer? {
        if let given { return given }
        let valid = plan.layout.text.valid
        guard valid != kernelPlan.layout.text.valid else { return nil }
        let key = UniformTextValidKey(device: context.deviceOrdinal, valid: valid, batch: batch)
        let result = uniformTextValid.withLock { table in
            lookUp(key, in: &table) { () throws(CUDAError) in
                try DeviceBuffer(context: context, copying: [Int32](repeating: Int32(valid), count: batch))
            }
        }
        do throws(CUDAError) {
            return try result.get()
        } catch {
            throw AttentionError(error, prefix: "the valid text lengths of the plan on device \(context.deviceOrdinal)")
        }
    }

    /// `table[key]`, made with `make` and stored on a miss; the caller holds the table's lock.
    private func lookUp<Key: Hashable, Value, Failure: Error>(
        _ key: Key, in table: inout [Key: Value], orMake make: () throws(Failure) -> Value
    ) -> Result<Value, Failure> {
        if let value = table[key] { return .success(value) }
        do throws(Failure) {
            let value = try make()
            table[key] = value
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    /// Kernels compiled or loaded so far, forward, backward and exact-rows (for tests and diagnostics).
    public var loadedKernelCount: Int { kernels.withLock { $0.forward.count + $0.backward.count + $0.exactRows.count } }
}
