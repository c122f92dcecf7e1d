import STACUDAKernels
import STAGeometry
import STATensors

/// The facts of one attention call that decide which kernels can run it.
public struct AttentionCall: Sendable {
    /// The plan (layout and windows); its layout bounds the Hopper kernel's grid.
    public let plan: AttentionPlan
    /// B.
    public let batch: Int
    /// D.
    public let headDim: Int
    /// The storage dtype of q, k, v (and of the output and gradients).
    public let dtype: DType
    /// Forward or backward.
    public let direction: AttentionDirection

    /// The facts of a call; nothing is checked here.
    public init(plan: AttentionPlan, batch: Int, headDim: Int, dtype: DType, direction: AttentionDirection) {
        self.plan = plan
        self.batch = batch
        self.headDim = headDim
        self.dtype = dtype
        self.direction = direction
    }
}

/// The one place that decides which kernel runs a call, with explicit capability predicates per kernel
/// (dtype, head dim, direction, shape limits, then architecture and shared memory). The CLI, the C
/// interface and the Python package all get their answer, and their error text, from here.
public enum KernelSelection {
    /// Storage dtypes the CPU kernel reads and writes.
    public static let cpuDTypes: [DType] = [.float32, .float16, .bfloat16]
    /// The largest batch, and head count, the CUDA kernels' grids take.
    public static let cudaGridLimit = 65_535

    /// Why `kernel` cannot run `call` on any device, judged from the call alone; nil when it can on a
    /// device that has what it needs. Cost: O(1).
    public static func callProblem(_ kernel: AttentionKernel, _ call: AttentionCall) -> String? {
        func allowed(_ dtypes: [DType], _ headDims: [Int]) -> String? {
            guard dtypes.contains(call.dtype) else {
                return "dtype \(call.dtype) is not supported; allowed: \(dtypes.map(\.description).joined(separator: ", "))"
            }
            guard headDims.contains(call.headDim) else {
                return "head dim \(call.headDim) is not supported; allowed: \(headDims.map(String.init).joined(separator: ", "))"
            }
            return nil
        }
        func grid() -> String? {
            guard call.batch <= cudaGridLimit else { return "batch \(call.batch) is over the CUDA grid limit \(cudaGridLimit)" }
            guard call.plan.heads <= cudaGridLimit else {
                return "\(call.plan.heads) heads are over the CUDA grid limit \(cudaGridLimit)"
            }
            return nil
        }
        switch kernel {
        case .cpu:
            guard cpuDTypes.contains(call.dtype) else {
                return "dtype \(call.dtype) is not supported; allowed: \(cpuDTypes.map(\.description).joined(separator: ", "))"
            }
            return nil
        case .portable:
            switch call.direction {
            case .forward: return allowed(STAForwardKernel.supportedDTypes, STAForwardKernel.supportedHeadDims) ?? grid()
            case .backward: return allowed(STABackwardKernel.supportedDTypes, STABackwardKernel.supportedHeadDims) ?? grid()
            }
        case .hopper:
            guard kernel.directions.contains(call.direction) else {
                return "it has no \(call.direction) pass (the portable kernels have one)"
            }
            let forward = call.direction == .forward
            if let problem = (forward
                ? allowed(STAForwardHopperKernel.supportedDTypes, STAForwardHopperKernel.supportedHeadDims)
                : allowed(STABackwardHopperKernel.supportedDTypes, STABackwardHopperKernel.supportedHeadDims)) ?? grid()
            {
                return problem
            }
            let blocks = (forward
                ? STAForwardHopperKernel.queryBlocks(layout: call.plan.layout)
                : STABackwardHopperKernel.keyBlocks(layout: call.plan.layout))
                .multipliedReportingOverflow(by: call.plan.heads * call.batch)
            guard !blocks.overflow, blocks.partialValue <= Int(Int32.max) else {
                return "its one-dimensional grid of \(forward ? "query" : "key") blocks × heads × batch is over \(Int32.max) blocks"
            }
            return nil
        }
    }

    /// Why `kernel` cannot run `call` on `device` (architecture, shared memory, or the wrong kind of
    /// device); nil when it can. Does not repeat `callProblem`. Cost: O(1).
    public static func deviceProblem(_ kernel: AttentionKernel, _ call: AttentionCall, on device: AttentionDevice) -> String? {
        switch (kernel, device) {
        case (.cpu, .cpu): return nil
        case (.cpu, .cuda): return "it runs on the CPU, not on a CUDA device"
        case (_, .cpu): return "it runs on a CUDA device, not on the CPU"
        case (.portable, .cuda(let gpu)):
            guard gpu.computeCapabilityMajor >= 8 else { return "it needs compute capability 8.0 or newer; the device is \(gpu.architecture)" }
            let shared = call.direction == .forward
                ? STAForwardKernel.sharedMemoryBytes(headDim: call.headDim)
                : max(STABackwardKernel.keysSharedMemoryBytes(headDim: call.headDim),
                      STABackwardKernel.queriesSharedMemoryBytes(headDim: call.headDim))
            return sharedMemoryProblem(shared, gpu)
        case (.hopper, .cuda(let gpu)):
            guard gpu.computeCapabilityMajor == 9 else {
                return "it needs compute capability 9.x (H100, H200, GH200); the device is \(gpu.architecture)"
            }
            let shared = call.direction == .forward
                ? STAForwardHopperKernel.sharedMemoryBytes(headDim: call.headDim)
                : STABackwardHopperKernel.sharedMemoryBytes(headDim: call.headDim)
            return sharedMemoryProblem(shared, gpu)
        }
    }

    private static func sharedMemoryProblem(_ needed: Int, _ gpu: CUDADeviceProperties) -> String? {
        needed <= gpu.sharedMemoryPerBlockOptin
            ? nil : "it needs \(needed) bytes of shared memory per block; the device allows \(gpu.sharedMemoryPerBlockOptin)"
    }

    /// Whether `kernel` can run `call` on `device` (NATTEN's `can_run`).
    public static func canRun(_ kernel: AttentionKernel, _ call: AttentionCall, on device: AttentionDevice) -> Bool {
        callProblem(kernel, call) == nil && deviceProblem(kernel, call, on: device) == nil
    }

    /// The kernels `preference` allows where a call of `direction` runs (`onCUDA` or the CPU), in the order
    /// tried. Automatic choice leaves out kernels without that direction; a kernel named is always tried.
    static func candidates(_ preference: KernelPreference, _ direction: AttentionDirection, onCUDA: Bool) -> [AttentionKernel] {
        if let kernel = preference.kernel { return [kernel] }
        return onCUDA ? AttentionKernel.cudaKernelsByPreference.filter { $0.directions.contains(direction) } : [.cpu]
    }

    /// Checks what can be checked before a device is opened: throws `invalidArgument` when no kernel
    /// `preference` allows can run `call` on any device of the kind (`onCUDA` or the CPU), with the
    /// message `choose` would give. Cost: O(1).
    public static func checkCall(_ preference: KernelPreference, _ call: AttentionCall, onCUDA: Bool) throws(AttentionError) {
        let kernels = candidates(preference, call.direction, onCUDA: onCUDA)
        let wrongPlace = kernels.filter { ($0 == .cpu) == onCUDA }
        if let kernel = wrongPlace.first {
            throw .invalidArgument(
                "the \(kernel) kernel cannot run this call: "
                    + (onCUDA ? "it runs on the CPU, not on a CUDA device" : "it runs on a CUDA device, not on the CPU"))
        }
        let problems = kernels.map { ($0, callProblem($0, call)) }
        if problems.allSatisfy({ $0.1 != nil }) {
            throw .invalidArgument(refusal(problems.map { ($0.0, $0.1!) }, call: call, onCUDA: onCUDA))
        }
    }

    /// The kernel that runs `call` on `device`: the one `preference` names, or for `automatic` the first
    /// of `AttentionKernel.cudaKernelsByPreference` that can run it (the CPU kernel on the CPU).
    ///
    /// Throws `invalidArgument` when the call itself rules every allowed kernel out (a dtype, head dim,
    /// direction or shape), `unavailable` when the device does (architecture, shared memory). The message names
    /// each kernel tried and why it cannot run the call. Cost: O(1).
    public static func choose(
        _ preference: KernelPreference, _ call: AttentionCall, on device: AttentionDevice
    ) throws(AttentionError) -> AttentionKernel {
        let onCUDA: Bool
        if case .cuda = device { onCUDA = true } else { onCUDA = false }
        try checkCall(preference, call, onCUDA: onCUDA)
        var problems = [(AttentionKernel, String)]()
        for kernel in candidates(preference, call.direction, onCUDA: onCUDA) {
            guard let problem = callProblem(kernel, call) ?? deviceProblem(kernel, call, on: device) else { return kernel }
            problems.append((kernel, problem))
        }
        throw .unavailable(refusal(problems, call: call, onCUDA: onCUDA) + " on \(device)")
    }

    /// One message for the kernels tried and why each cannot run the call.
    static func refusal(_ problems: [(AttentionKernel, String)], call: AttentionCall, onCUDA: Bool) -> String {
        let what = "\(call.direction) attention in \(call.dtype) at head dim \(call.headDim)"
        if problems.count == 1 { return "the \(problems[0].0) kernel cannot run \(what): \(problems[0].1)" }
        if Set(problems.map(\.1)).count == 1 { return "no CUDA kernel can run \(what): \(problems[0].1)" }
        return "no CUDA kernel can run \(what): " + problems.map { "the \($0.0) kernel: \($0.1)" }.joined(separator: "; ")
    }

    /// The CUDA kernels that run some call of `direction` on `device` (in bf16 at head dim 128 or 64),
    /// portable first: what `sta verify` and `sta bench` mean by "all".
    public static func cudaKernels(_ direction: AttentionDirection, on device: CUDADeviceProperties) -> [AttentionKernel] {
        AttentionKernel.allCases.filter { kernel in
            kernel != .cpu &&
            [128, 64].contains { headDim in
                let call = AttentionCall(
                    plan: probePlan, batch: 1, headDim: headDim, dtype: .bfloat16, direction: direction)
                return canRun(kernel, call, on: .cuda(device))
            }
        }
    }

    /// The kernel automatic choice takes for a typical call of `direction` on `device` (bf16, head dim
    /// 128 or 64), nil when none runs there.
    public static func automaticKernel(_ direction: AttentionDirection, on device: CUDADeviceProperties) -> AttentionKernel? {
        let runnable = cudaKernels(direction, on: device)
        return AttentionKernel.cudaKernelsByPreference.first { runnable.contains($0) }
    }

    /// A one-head plan of one tile, to ask what a device runs at all.
    private static let probePlan: AttentionPlan = {
        // A valid layout and window by construction; cannot fail.
        try! AttentionPlan(layout: STALayout(canvas: [64], tile: [64]), window: Window(tiles: [1]), heads: 1)
    }()
}
