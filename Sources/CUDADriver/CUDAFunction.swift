/// A kernel of a loaded `CUDAModule` (a CUfunction). Keeps its module alive.
public struct CUDAFunction: @unchecked Sendable {
    public let module: CUDAModule
    let handle: CUhandle
    /// The name the function was looked up with.
    public let name: String

    init(module: CUDAModule, handle: CUhandle, name: String) {
        self.module = module
        self.handle = handle
        self.name = name
    }

    /// CUfunction_attribute values (cuda.h).
    public enum Attribute: Int32, Sendable {
        case maxThreadsPerBlock = 0
        case staticSharedBytes = 1
        case constantBytes = 2
        case localBytes = 3
        case registers = 4
        case ptxVersion = 5
        case binaryVersion = 6
        case maxDynamicSharedBytes = 8
    }

    private var driver: DriverAPI { module.context.driver }

    /// The value of `attribute` (cuFuncGetAttribute).
    public func attribute(_ attribute: Attribute) throws(CUDAError) -> Int {
        try module.context.makeCurrent()
        var value: Int32 = 0
        try driver.check(driver.cuFuncGetAttribute(&value, attribute.rawValue, handle), "cuFuncGetAttribute")
        return Int(value)
    }

    /// Registers per thread.
    public var registers: Int { get throws(CUDAError) { try attribute(.registers) } }
    /// Local memory per thread (stack and spills), in bytes.
    public var localBytes: Int { get throws(CUDAError) { try attribute(.localBytes) } }
    /// The largest block this kernel can launch with, given its register use.
    public var maxThreadsPerBlock: Int { get throws(CUDAError) { try attribute(.maxThreadsPerBlock) } }
    /// Statically declared shared memory per block, in bytes.
    public var staticSharedBytes: Int { get throws(CUDAError) { try attribute(.staticSharedBytes) } }

    /// Allows launches with up to `bytes` of dynamic shared memory (needed above 48 KiB;
    /// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). The device limit is
    /// `CUDAContext.maxSharedMemoryPerBlockOptin` minus the kernel's static shared memory.
    public func setMaxDynamicSharedMemory(bytes: Int) throws(CUDAError) {
        guard bytes >= 0, bytes <= Int(Int32.max) else {
            throw .invalidArgument(
                function: "CUDAFunction.setMaxDynamicSharedMemory",
                message: "\(bytes) bytes is outside 0...\(Int32.max)")
        }
        try module.context.makeCurrent()
        try driver.check(
            driver.cuFuncSetAttribute(handle, Attribute.maxDynamicSharedBytes.rawValue, Int32(bytes)),
            "cuFuncSetAttribute")
    }

    /// Queues the kernel on `stream` (nil: the legacy default stream) with `grid` blocks of `block`
    /// threads and `sharedMemoryBytes` of dynamic shared memory (cuLaunchKernel). Returns once queued;
    /// errors inside the kernel surface at the next synchronisation. The argument bytes are copied by
    /// the driver during this call; buffers appended to `arguments` stay alive as long as `arguments`.
    public func launch(
        grid: (x: Int, y: Int, z: Int), block: (x: Int, y: Int, z: Int), sharedMemoryBytes: Int,
        stream: CUDAStream?, arguments: KernelArguments
    ) throws(CUDAError) {
        func dimension(_ value: Int, _ what: String) throws(CUDAError) -> UInt32 {
            guard value >= 1, value <= Int(UInt32.max) else {
                throw .invalidArgument(
                    function: "CUDAFunction.launch(\(name))",
                    message: "\(what) is \(value); it must be in 1...\(UInt32.max)")
            }
            return UInt32(value)
        }
        let gx = try dimension(grid.x, "grid.x")
        let gy = try dimension(grid.y, "grid.y")
        let gz = try dimension(grid.z, "grid.z")
        let bx = try dimension(block.x, "block.x")
        let by = try dimension(block.y, "block.y")
        let bz = try dimension(block.z, "block.z")
        guard sharedMemoryBytes >= 0, sharedMemoryBytes <= Int(UInt32.max) else {
            throw .invalidArgument(
                function: "CUDAFunction.launch(\(name))",
                message: "sharedMemoryBytes is \(sharedMemoryBytes); it must be 0 or more")
        }
        if let stream, stream.context.handle != module.context.handle {
            throw .invalidArgument(
                function: "CUDAFunction.launch(\(name))", message: "the stream belongs to another context")
        }
        try module.context.makeCurrent()
        let driver = self.driver
        let function = handle
        let result = arguments.withParameterPointers { parameters in
            driver.cuLaunchKernel(
                function, gx, gy, gz, bx, by, bz, UInt32(sharedMemoryBytes), stream?.handle, parameters, nil)
        }
        if result != 0 { throw driver.error(result, function: "cuLaunchKernel(\(name))") }
    }
}
