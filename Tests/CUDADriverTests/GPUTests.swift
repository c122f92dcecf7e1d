import Testing

@testable import CUDADriver

/// The first GPU, or nil on machines without one (then these tests are skipped).
let gpuContext: CUDAContext? = try? CUDAContext.open()

private let saxpySource = """
    extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }
    extern "C" __global__ void reverse_dynamic(float* y, int n) {
        extern __shared__ float tile[];
        int i = threadIdx.x;
        if (i < n) tile[i] = y[i];
        __syncthreads();
        if (i < n) y[i] = tile[n - 1 - i];
    }
    """

@Suite(.enabled(if: gpuContext != nil && nvrtcAvailable, "needs a CUDA GPU and NVRTC"), .serialized)
struct GPUTests {
    let context = gpuContext!
    let compiler = loadedNVRTC!

    private func module(ptx: Bool = false) throws -> CUDAModule {
        let architecture = ptx ? "compute_" + context.architecture.dropFirst(3) : context.architecture
        let kernel = try compiler.compile(
            source: saxpySource, sourceName: "saxpy.cu", options: ["--gpu-architecture=\(architecture)"])
        #expect(kernel.format == (ptx ? .ptx : .cubin))
        return try CUDAModule(context: context, image: kernel.image)
    }

    @Test func devicePropertiesArePlausible() {
        #expect(context.architecture.hasPrefix("sm_"))
        #expect(context.multiprocessorCount > 0)
        #expect(context.maxSharedMemoryPerBlockOptin >= context.maxSharedMemoryPerBlock)
        #expect(context.maxSharedMemoryPerBlock > 0)
        #expect(context.totalMemoryBytes > 0)
        #expect(context.driverVersion >= 11000)
        #expect((try? CUDAContext.deviceCount()) ?? 0 >= 1)
    }

    @Test func buffersRoundTripFillAndCheckBounds() throws {
        let values: [Float] = (0..<1000).map { Float($0) * 0.5 - 17 }
        let buffer = try DeviceBuffer(context: context, copying: values)
        #expect(buffer.byteCount == 4000)
        #expect(try buffer.download(as: Float.self, count: 1000) == values)
        #expect(try buffer.download(as: Float.self, count: 10, byteOffset: 40) == Array(values[10..<20]))
        try buffer.upload([Float](repeating: 3, count: 5), byteOffset: 8)
        #expect(try buffer.download(as: Float.self, count: 8) == [values[0], values[1], 3, 3, 3, 3, 3, values[7]])
        try buffer.fill(byte: 0)
        try context.synchronize()
        #expect(try buffer.download(as: UInt32.self, count: 1000).allSatisfy { $0 == 0 })
        #expect(throws: CUDAError.self) { try buffer.download(as: Float.self, count: 1001) }
        #expect(throws: CUDAError.self) { try buffer.upload([Float](repeating: 0, count: 2), byteOffset: 3996) }
        #expect(throws: CUDAError.self) { try DeviceBuffer(context: context, byteCount: -1) }
        let empty = try DeviceBuffer(context: context, byteCount: 0)
        #expect(empty.address == 0)
    }

    @Test(arguments: [false, true])
    func saxpyMatchesTheHost(ptx: Bool) throws {
        let function = try module(ptx: ptx).function(named: "saxpy")
        #expect(try function.registers > 0)
        #expect(try function.maxThreadsPerBlock >= 256)
        #expect(try function.localBytes == 0)
        let n = 100_003
        let x: [Float] = (0..<n).map { Float($0 % 97) * 0.25 }
        let y: [Float] = (0..<n).map { Float($0 % 13) - 6 }
        let a: Float = 1.75
        let xBuffer = try DeviceBuffer(context: context, copying: x)
        let yBuffer = try DeviceBuffer(context: context, copying: y)
        var arguments = KernelArguments()
        arguments.append(a)
        arguments.append(xBuffer)
        arguments.append(yBuffer)
        arguments.append(Int32(n))
        let stream = try CUDAStream(context: context)
        let start = try CUDAEvent(context: context)
        let stop = try CUDAEvent(context: context)
        try start.record(on: stream)
        try function.launch(
            grid: ((n + 255) / 256, 1, 1), block: (256, 1, 1), sharedMemoryBytes: 0, stream: stream,
            arguments: arguments)
        try stop.record(on: stream)
        try stream.synchronize()
        try stop.synchronize()
        #expect(try stop.milliseconds(since: start) >= 0)
        let result = try yBuffer.download(as: Float.self, count: n)
        var worst: Float = 0
        for i in 0..<n { worst = max(worst, abs(result[i] - (a * x[i] + y[i]))) }
        #expect(worst <= 1e-4)
    }

    @Test func dynamicSharedMemoryOptIn() throws {
        let function = try module().function(named: "reverse_dynamic")
        let n = 1024
        let values: [Float] = (0..<n).map { Float($0) }
        let buffer = try DeviceBuffer(context: context, copying: values)
        var arguments = KernelArguments()
        arguments.append(buffer)
        arguments.append(Int32(n))
        let large = context.maxSharedMemoryPerBlockOptin
        try function.setMaxDynamicSharedMemory(bytes: large)
        #expect(try function.attribute(.maxDynamicSharedBytes) == large)
        try function.launch(
            grid: (1, 1, 1), block: (n, 1, 1), sharedMemoryBytes: large, stream: nil, arguments: arguments)
        try context.synchronize()
        #expect(try buffer.download(as: Float.self, count: n) == Array(values.reversed()))
        // Beyond the device's opt-in limit the launch is refused.
        #expect(throws: CUDAError.self) {
            try function.launch(
                grid: (1, 1, 1), block: (n, 1, 1), sharedMemoryBytes: large + 1024, stream: nil, arguments: arguments)
        }
        try context.synchronize()
    }

    @Test func badLaunchesAndNamesAreReported() throws {
        let module = try module()
        do {
            _ = try module.function(named: "no_such_kernel")
            Issue.record("a missing kernel was found")
        } catch {
            guard case .call(let function, _, let name, _) = error else {
                Issue.record("expected call, got \(error)")
                return
            }
            #expect(function == "cuModuleGetFunction")
            #expect(name == "CUDA_ERROR_NOT_FOUND")
        }
        let function = try module.function(named: "saxpy")
        #expect(throws: CUDAError.self) {
            try function.launch(
                grid: (0, 1, 1), block: (1, 1, 1), sharedMemoryBytes: 0, stream: nil, arguments: KernelArguments())
        }
        #expect(throws: CUDAError.self) {
            try function.launch(
                grid: (1, 1, 1), block: (4096, 1, 1), sharedMemoryBytes: 0, stream: nil, arguments: KernelArguments())
        }
        #expect(throws: CUDAError.self) { try CUDAModule(context: context, image: [1, 2, 3, 4]) }
    }

    @Test func tensorMapsEncodeOnHopperAndLater() throws {
        guard context.computeCapability.major >= 9 else { return }
        // A [24 heads, 4096 tokens, 128 dims] bf16 tensor; boxes of 64 tokens × 64 dims (128 bytes).
        let buffer = try DeviceBuffer(context: context, byteCount: 24 * 4096 * 128 * 2)
        let map = try TensorMap.tiled(
            buffer: buffer, elementType: .bfloat16, dimensions: [128, 4096, 24], strideBytes: [256, 256 * 4096],
            boxDimensions: [64, 64, 1], swizzle: .bytes128)
        #expect(map.bytes.count == TensorMap.byteCount)
        #expect(map.bytes.contains { $0 != 0 })
        #expect(throws: CUDAError.self) {
            try TensorMap.tiled(
                buffer: buffer, elementType: .bfloat16, dimensions: [128, 4096, 25], strideBytes: [256, 256 * 4096],
                boxDimensions: [64, 64, 1])
        }
    }
}
