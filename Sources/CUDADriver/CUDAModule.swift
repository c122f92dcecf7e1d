/// Code loaded onto the device from a CUBIN, fatbin or PTX image (cuModuleLoadData); unloaded in
/// `deinit`. Functions taken from it keep it alive.
public final class CUDAModule: @unchecked Sendable {
    public let context: CUDAContext
    let handle: CUhandle

    /// Loads `image`: an ELF CUBIN, a fatbin, or PTX text (a terminating NUL is added when missing).
    /// PTX is compiled by the driver's JIT, which costs milliseconds to seconds. Throws `call` with
    /// CUDA_ERROR_INVALID_IMAGE / CUDA_ERROR_NO_BINARY_FOR_GPU when the image does not fit the device.
    public init(context: CUDAContext, image: [UInt8]) throws(CUDAError) {
        guard !image.isEmpty else {
            throw .invalidArgument(function: "CUDAModule.init", message: "the image is empty")
        }
        self.context = context
        var bytes = image
        if !CompiledKernel.isELF(image) && !Self.isFatbin(image) && image.last != 0 { bytes.append(0) }
        try context.makeCurrent()
        var module: CUhandle? = nil
        let result = bytes.withUnsafeBytes { context.driver.cuModuleLoadData(&module, $0.baseAddress) }
        try context.driver.check(result, "cuModuleLoadData")
        guard let module else {
            throw .invalidArgument(function: "cuModuleLoadData", message: "the driver returned no module")
        }
        handle = module
    }

    deinit {
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = context.driver.cuModuleUnload(handle)
    }

    /// The kernel named `name` (its mangled name, or the plain name of an `extern "C"` kernel).
    /// Throws `call` with CUDA_ERROR_NOT_FOUND when the module has no such kernel.
    public func function(named name: String) throws(CUDAError) -> CUDAFunction {
        try context.makeCurrent()
        var function: CUhandle? = nil
        try context.driver.check(context.driver.cuModuleGetFunction(&function, handle, name), "cuModuleGetFunction")
        guard let function else {
            throw .invalidArgument(
                function: "cuModuleGetFunction", message: "the driver returned no function for \(name)")
        }
        return CUDAFunction(module: self, handle: function, name: name)
    }

    /// Fatbin images start with the magic 0xBA55ED50 (little endian).
    static func isFatbin(_ image: [UInt8]) -> Bool {
        image.count >= 4 && image[0] == 0x50 && image[1] == 0xED && image[2] == 0x55 && image[3] == 0xBA
    }
}
