// The one place that declares and calls the CUDA driver's C functions.

typealias CUresult = Int32
typealias CUdevice = Int32
typealias CUdeviceptr = UInt64
/// CUcontext, CUmodule, CUfunction, CUstream and CUevent are all opaque pointers.
typealias CUhandle = OpaquePointer

/// C signatures of the driver functions, as declared in cuda.h (enums are C `int`s, `size_t` is `Int`).
enum DriverSignature {
    typealias GetString = @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    typealias Flags = @convention(c) (UInt32) -> CUresult
    typealias IntOut = @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    typealias HandleOut = @convention(c) (UnsafeMutablePointer<CUhandle?>?, UInt32) -> CUresult
    typealias OnHandle = @convention(c) (CUhandle?) -> CUresult
    typealias NoArguments = @convention(c) () -> CUresult
    typealias DeviceGet = @convention(c) (UnsafeMutablePointer<CUdevice>?, Int32) -> CUresult
    typealias DeviceGetName = @convention(c) (UnsafeMutablePointer<CChar>?, Int32, CUdevice) -> CUresult
    typealias DeviceGetAttribute = @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUdevice) -> CUresult
    typealias DeviceTotalMem = @convention(c) (UnsafeMutablePointer<Int>?, CUdevice) -> CUresult
    typealias PrimaryCtxRetain = @convention(c) (UnsafeMutablePointer<CUhandle?>?, CUdevice) -> CUresult
    typealias PrimaryCtxRelease = @convention(c) (CUdevice) -> CUresult
    typealias MemAlloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> CUresult
    typealias MemFree = @convention(c) (CUdeviceptr) -> CUresult
    typealias MemcpyHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    typealias MemcpyDtoH = @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    typealias MemsetD8 = @convention(c) (CUdeviceptr, UInt8, Int) -> CUresult
    typealias ModuleLoadData = @convention(c) (UnsafeMutablePointer<CUhandle?>?, UnsafeRawPointer?) -> CUresult
    typealias ModuleGetFunction =
        @convention(c) (UnsafeMutablePointer<CUhandle?>?, CUhandle?, UnsafePointer<CChar>?) -> CUresult
    typealias FuncSetAttribute = @convention(c) (CUhandle?, Int32, Int32) -> CUresult
    typealias FuncGetAttribute = @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUhandle?) -> CUresult
    /// (function, grid x y z, block x y z, shared bytes, stream, kernelParams, extra)
    typealias LaunchKernel =
        @convention(c) (
            CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> CUresult
    typealias EventRecord = @convention(c) (CUhandle?, CUhandle?) -> CUresult
    typealias EventElapsedTime = @convention(c) (UnsafeMutablePointer<Float>?, CUhandle?, CUhandle?) -> CUresult
    /// (tensorMap, dataType, rank, globalAddress, globalDim, globalStrides, boxDim, elementStrides,
    ///  interleave, swizzle, l2Promotion, oobFill)
    typealias TensorMapEncodeTiled =
        @convention(c) (
            UnsafeMutableRawPointer?, Int32, UInt32, UnsafeMutableRawPointer?,
            UnsafePointer<UInt64>?, UnsafePointer<UInt64>?, UnsafePointer<UInt32>?, UnsafePointer<UInt32>?,
            Int32, Int32, Int32, Int32
        ) -> CUresult
}

/// The driver functions this package uses, resolved from libcuda with dlsym. Where cuda.h maps a name
/// to a `_v2` symbol, the `_v2` symbol is resolved.
struct DriverAPI: @unchecked Sendable {
    typealias S = DriverSignature
    let library: DynamicLibrary

    let cuGetErrorName: S.GetString
    let cuGetErrorString: S.GetString
    let cuInit: S.Flags
    let cuDriverGetVersion: S.IntOut
    let cuDeviceGetCount: S.IntOut
    let cuDeviceGet: S.DeviceGet
    let cuDeviceGetName: S.DeviceGetName
    let cuDeviceGetAttribute: S.DeviceGetAttribute
    let cuDeviceTotalMem: S.DeviceTotalMem
    let cuDevicePrimaryCtxRetain: S.PrimaryCtxRetain
    let cuDevicePrimaryCtxRelease: S.PrimaryCtxRelease
    let cuCtxSetCurrent: S.OnHandle
    let cuCtxSynchronize: S.NoArguments
    let cuMemAlloc: S.MemAlloc
    let cuMemFree: S.MemFree
    let cuMemcpyHtoD: S.MemcpyHtoD
    let cuMemcpyDtoH: S.MemcpyDtoH
    let cuMemsetD8: S.MemsetD8
    let cuModuleLoadData: S.ModuleLoadData
    let cuModuleUnload: S.OnHandle
    let cuModuleGetFunction: S.ModuleGetFunction
    let cuFuncSetAttribute: S.FuncSetAttribute
    let cuFuncGetAttribute: S.FuncGetAttribute
    let cuLaunchKernel: S.LaunchKernel
    let cuStreamCreate: S.HandleOut
    let cuStreamDestroy: S.OnHandle
    let cuStreamSynchronize: S.OnHandle
    let cuEventCreate: S.HandleOut
    let cuEventDestroy: S.OnHandle
    let cuEventRecord: S.EventRecord
    let cuEventSynchronize: S.OnHandle
    /// cuEventElapsedTime_v2 (CUDA 12.8+) where the driver has it, else cuEventElapsedTime.
    let cuEventElapsedTime: S.EventElapsedTime
    /// Present from CUDA 12.0 on; nil with older drivers.
    let cuTensorMapEncodeTiled: S.TensorMapEncodeTiled?

    /// Resolves every function from `library`. Throws `missingSymbol` for the first required one absent.
    init(library: DynamicLibrary) throws(CUDAError) {
        self.library = library
        cuGetErrorName = try library.required("cuGetErrorName", as: S.GetString.self)
        cuGetErrorString = try library.required("cuGetErrorString", as: S.GetString.self)
        cuInit = try library.required("cuInit", as: S.Flags.self)
        cuDriverGetVersion = try library.required("cuDriverGetVersion", as: S.IntOut.self)
        cuDeviceGetCount = try library.required("cuDeviceGetCount", as: S.IntOut.self)
        cuDeviceGet = try library.required("cuDeviceGet", as: S.DeviceGet.self)
        cuDeviceGetName = try library.required("cuDeviceGetName", as: S.DeviceGetName.self)
        cuDeviceGetAttribute = try library.required("cuDeviceGetAttribute", as: S.DeviceGetAttribute.self)
        cuDeviceTotalMem = try library.required("cuDeviceTotalMem_v2", as: S.DeviceTotalMem.self)
        cuDevicePrimaryCtxRetain = try library.required("cuDevicePrimaryCtxRetain", as: S.PrimaryCtxRetain.self)
        cuDevicePrimaryCtxRelease = try library.required(
            "cuDevicePrimaryCtxRelease_v2", as: S.PrimaryCtxRelease.self)
        cuCtxSetCurrent = try library.required("cuCtxSetCurrent", as: S.OnHandle.self)
        cuCtxSynchronize = try library.required("cuCtxSynchronize", as: S.NoArguments.self)
        cuMemAlloc = try library.required("cuMemAlloc_v2", as: S.MemAlloc.self)
        cuMemFree = try library.required("cuMemFree_v2", as: S.MemFree.self)
        cuMemcpyHtoD = try library.required("cuMemcpyHtoD_v2", as: S.MemcpyHtoD.self)
        cuMemcpyDtoH = try library.required("cuMemcpyDtoH_v2", as: S.MemcpyDtoH.self)
        cuMemsetD8 = try library.required("cuMemsetD8_v2", as: S.MemsetD8.self)
        cuModuleLoadData = try library.required("cuModuleLoadData", as: S.ModuleLoadData.self)
        cuModuleUnload = try library.required("cuModuleUnload", as: S.OnHandle.self)
        cuModuleGetFunction = try library.required("cuModuleGetFunction", as: S.ModuleGetFunction.self)
        cuFuncSetAttribute = try library.required("cuFuncSetAttribute", as: S.FuncSetAttribute.self)
        cuFuncGetAttribute = try library.required("cuFuncGetAttribute", as: S.FuncGetAttribute.self)
        cuLaunchKernel = try library.required("cuLaunchKernel", as: S.LaunchKernel.self)
        cuStreamCreate = try library.required("cuStreamCreate", as: S.HandleOut.self)
        cuStreamDestroy = try library.required("cuStreamDestroy_v2", as: S.OnHandle.self)
        cuStreamSynchronize = try library.required("cuStreamSynchronize", as: S.OnHandle.self)
        cuEventCreate = try library.required("cuEventCreate", as: S.HandleOut.self)
        cuEventDestroy = try library.required("cuEventDestroy_v2", as: S.OnHandle.self)
        cuEventRecord = try library.required("cuEventRecord", as: S.EventRecord.self)
        cuEventSynchronize = try library.required("cuEventSynchronize", as: S.OnHandle.self)
        if let v2 = library.function("cuEventElapsedTime_v2", as: S.EventElapsedTime.self) {
            cuEventElapsedTime = v2
        } else {
            cuEventElapsedTime = try library.required("cuEventElapsedTime", as: S.EventElapsedTime.self)
        }
        cuTensorMapEncodeTiled = library.function("cuTensorMapEncodeTiled", as: S.TensorMapEncodeTiled.self)
    }

    /// Throws `CUDAError.call` naming `function` when `result` is not CUDA_SUCCESS (0).
    @inline(__always)
    func check(_ result: CUresult, _ function: StaticString) throws(CUDAError) {
        if result != 0 { throw error(result, function: "\(function)") }
    }

    /// The error for `result`, with the driver's name and text for it.
    func error(_ result: CUresult, function: String) -> CUDAError {
        .call(function: function, code: result, name: errorName(result), message: errorString(result))
    }

    func errorName(_ result: CUresult) -> String {
        var text: UnsafePointer<CChar>? = nil
        guard cuGetErrorName(result, &text) == 0, let text else { return "CUDA_ERROR_UNKNOWN_CODE" }
        return String(cString: text)
    }

    func errorString(_ result: CUresult) -> String {
        var text: UnsafePointer<CChar>? = nil
        guard cuGetErrorString(result, &text) == 0, let text else { return "unrecognized CUDA error code" }
        return String(cString: text)
    }
}

extension DriverAPI {
    /// The library names tried when no override is given, in order.
    static let defaultLibraryNames = ["libcuda.so.1", "libcuda.so"]

    /// `$STA_CUDA_DRIVER_PATH` alone when set, else `defaultLibraryNames`.
    static func defaultCandidates() -> [String] {
        if let path = environmentValue("STA_CUDA_DRIVER_PATH") { return [path] }
        return defaultLibraryNames
    }

    /// Opens the first of `candidates` that loads and resolves the driver functions from it.
    static func load(candidates: [String]) throws(CUDAError) -> DriverAPI {
        switch DynamicLibrary.openFirst(candidates) {
        case .success(let library): return try DriverAPI(library: library)
        case .failure(let error):
            throw .driverNotFound(
                "tried \(error.message). Install the NVIDIA driver, or set STA_CUDA_DRIVER_PATH to libcuda.so.1")
        }
    }

    /// The driver found from `defaultCandidates()`, loaded once per process.
    static let shared: Result<DriverAPI, CUDAError> = {
        do throws(CUDAError) {
            return .success(try load(candidates: defaultCandidates()))
        } catch {
            return .failure(error)
        }
    }()

    // CUdevice_attribute values (cuda.h).
    static let attributeMaxSharedMemoryPerBlock: Int32 = 8
    static let attributeMultiprocessorCount: Int32 = 16
    static let attributeComputeCapabilityMajor: Int32 = 75
    static let attributeComputeCapabilityMinor: Int32 = 76
    static let attributeMaxSharedMemoryPerBlockOptin: Int32 = 97
}
