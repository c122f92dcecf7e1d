/// One CUDA device and its primary context (the context the CUDA runtime and PyTorch also use).
///
/// Opening retains the primary context and makes it current on the calling thread; `deinit` releases it.
/// Buffers, streams, events and modules keep their context alive. Every operation of this module makes
/// the context current on the calling thread before it calls the driver, so a context may be used from
/// any thread.
public final class CUDAContext: @unchecked Sendable {
    let driver: DriverAPI
    let device: CUdevice
    let handle: CUhandle

    /// The ordinal the device was opened with.
    public let deviceOrdinal: Int
    /// The device's name, e.g. "NVIDIA H200".
    public let deviceName: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    /// The default limit of shared memory per block, in bytes (48 KiB on current GPUs).
    public let maxSharedMemoryPerBlock: Int
    /// The largest dynamic shared memory a block may opt into with `setMaxDynamicSharedMemory`, in bytes.
    public let maxSharedMemoryPerBlockOptin: Int
    /// Global memory, in bytes.
    public let totalMemoryBytes: Int
    /// The driver's CUDA version as 1000·major + 10·minor (12080 for CUDA 12.8).
    public let driverVersion: Int
    /// The library the driver was loaded from.
    public var driverLibraryPath: String { driver.library.path }

    /// The NVRTC/ptxas target for this device: "sm_90a" on compute capability 9.0 (so Hopper-only
    /// instructions such as wgmma are available), "sm_<major><minor>" otherwise ("sm_80", "sm_89",
    /// "sm_100").
    public var architecture: String {
        Self.architecture(major: computeCapability.major, minor: computeCapability.minor)
    }

    /// The NVRTC target for compute capability `major.minor`: `sm_90a` for 9.x, else `sm_<major><minor>`.
    public static func architecture(major: Int, minor: Int) -> String {
        major == 9 ? "sm_\(major)\(minor)a" : "sm_\(major)\(minor)"
    }

    private init(
        driver: DriverAPI, device: CUdevice, handle: CUhandle, ordinal: Int, name: String,
        capability: (Int, Int), multiprocessors: Int, sharedPerBlock: Int, sharedOptin: Int,
        totalMemory: Int, driverVersion: Int
    ) {
        self.driver = driver
        self.device = device
        self.handle = handle
        self.deviceOrdinal = ordinal
        self.deviceName = name
        self.computeCapability = capability
        self.multiprocessorCount = multiprocessors
        self.maxSharedMemoryPerBlock = sharedPerBlock
        self.maxSharedMemoryPerBlockOptin = sharedOptin
        self.totalMemoryBytes = totalMemory
        self.driverVersion = driverVersion
    }

    deinit {
        _ = driver.cuDevicePrimaryCtxRelease(device)
    }

    /// Loads the driver (`$STA_CUDA_DRIVER_PATH`, else libcuda.so.1, else libcuda.so), initialises it,
    /// retains device `ordinal`'s primary context and makes it current on this thread.
    ///
    /// Throws `driverNotFound` when no driver library loads, `noDevice` when cuInit fails, no device is
    /// present or `ordinal` is out of range. Costs cuInit on first use (tens to hundreds of ms).
    public static func open(device ordinal: Int = 0) throws(CUDAError) -> CUDAContext {
        try open(device: ordinal, driver: DriverAPI.shared.get())
    }

    /// `open(device:)` with the driver library searched only in `driverCandidates`.
    static func open(device ordinal: Int, driverCandidates: [String]) throws(CUDAError) -> CUDAContext {
        try open(device: ordinal, driver: DriverAPI.load(candidates: driverCandidates))
    }

    /// The number of CUDA devices the driver sees. Throws like `open`, except that zero devices is 0.
    public static func deviceCount() throws(CUDAError) -> Int {
        let driver = try DriverAPI.shared.get()
        try initialize(driver)
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }

    private static func initialize(_ driver: DriverAPI) throws(CUDAError) {
        let result = driver.cuInit(0)
        guard result == 0 else {
            throw .noDevice(
                "cuInit failed with \(driver.errorName(result)) (\(result)): \(driver.errorString(result)); "
                    + "driver loaded from \(driver.library.path)")
        }
    }

    static func open(device ordinal: Int, driver: DriverAPI) throws(CUDAError) -> CUDAContext {
        try initialize(driver)
        var version: Int32 = 0
        try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw .noDevice("the CUDA driver (\(driver.library.path)) reports no devices") }
        guard ordinal >= 0, ordinal < Int(count) else {
            throw .noDevice("device ordinal \(ordinal) was requested; the ordinals present are 0..<\(count)")
        }
        var device: CUdevice = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")

        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, Int32(nameBuffer.count - 1), device), "cuDeviceGetName")
        let name = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)

        func attribute(_ attribute: Int32) throws(CUDAError) -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, attribute, device), "cuDeviceGetAttribute")
            return Int(value)
        }
        let major = try attribute(DriverAPI.attributeComputeCapabilityMajor)
        let minor = try attribute(DriverAPI.attributeComputeCapabilityMinor)
        let multiprocessors = try attribute(DriverAPI.attributeMultiprocessorCount)
        let sharedPerBlock = try attribute(DriverAPI.attributeMaxSharedMemoryPerBlock)
        let sharedOptin = try attribute(DriverAPI.attributeMaxSharedMemoryPerBlockOptin)
        var totalMemory = 0
        try driver.check(driver.cuDeviceTotalMem(&totalMemory, device), "cuDeviceTotalMem_v2")

        var context: CUhandle? = nil
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else {
            _ = driver.cuDevicePrimaryCtxRelease(device)
            throw .noDevice("cuDevicePrimaryCtxRetain returned no context for device \(ordinal)")
        }
        let result = CUDAContext(
            driver: driver, device: device, handle: context, ordinal: ordinal, name: name,
            capability: (major, minor), multiprocessors: multiprocessors, sharedPerBlock: sharedPerBlock,
            sharedOptin: sharedOptin, totalMemory: totalMemory, driverVersion: Int(version))
        try result.makeCurrent()  // on failure `result`'s deinit releases the context
        return result
    }

    /// Makes this context current on the calling thread (cuCtxSetCurrent).
    public func makeCurrent() throws(CUDAError) {
        try driver.check(driver.cuCtxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// Waits for all work queued in this context to finish; reports the first asynchronous error
    /// (e.g. a kernel's illegal address) if one happened.
    public func synchronize() throws(CUDAError) {
        try makeCurrent()
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
    }
}
