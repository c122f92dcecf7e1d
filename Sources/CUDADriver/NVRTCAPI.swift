#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The one place that declares and calls NVRTC's C functions.

typealias NVRTCResult = Int32

/// C signatures of the NVRTC functions, as declared in nvrtc.h.
enum NVRTCSignature {
    typealias GetErrorString = @convention(c) (NVRTCResult) -> UnsafePointer<CChar>?
    typealias Version = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> NVRTCResult
    /// (program out, source, name, header count, header sources, header include names)
    typealias CreateProgram =
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> NVRTCResult
    typealias DestroyProgram = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> NVRTCResult
    typealias CompileProgram =
        @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> NVRTCResult
    typealias GetSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> NVRTCResult
    typealias GetBytes = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> NVRTCResult
}

/// The NVRTC functions this package uses, resolved with dlsym from a libnvrtc opened at run time.
struct NVRTCAPI: @unchecked Sendable {
    typealias S = NVRTCSignature
    let library: DynamicLibrary

    let nvrtcGetErrorString: S.GetErrorString
    let nvrtcVersion: S.Version
    let nvrtcCreateProgram: S.CreateProgram
    let nvrtcDestroyProgram: S.DestroyProgram
    let nvrtcCompileProgram: S.CompileProgram
    let nvrtcGetProgramLogSize: S.GetSize
    let nvrtcGetProgramLog: S.GetBytes
    let nvrtcGetPTXSize: S.GetSize
    let nvrtcGetPTX: S.GetBytes
    let nvrtcGetCUBINSize: S.GetSize
    let nvrtcGetCUBIN: S.GetBytes

    init(library: DynamicLibrary) throws(CUDAError) {
        self.library = library
        nvrtcGetErrorString = try library.required("nvrtcGetErrorString", as: S.GetErrorString.self)
        nvrtcVersion = try library.required("nvrtcVersion", as: S.Version.self)
        nvrtcCreateProgram = try library.required("nvrtcCreateProgram", as: S.CreateProgram.self)
        nvrtcDestroyProgram = try library.required("nvrtcDestroyProgram", as: S.DestroyProgram.self)
        nvrtcCompileProgram = try library.required("nvrtcCompileProgram", as: S.CompileProgram.self)
        nvrtcGetProgramLogSize = try library.required("nvrtcGetProgramLogSize", as: S.GetSize.self)
        nvrtcGetProgramLog = try library.required("nvrtcGetProgramLog", as: S.GetBytes.self)
        nvrtcGetPTXSize = try library.required("nvrtcGetPTXSize", as: S.GetSize.self)
        nvrtcGetPTX = try library.required("nvrtcGetPTX", as: S.GetBytes.self)
        nvrtcGetCUBINSize = try library.required("nvrtcGetCUBINSize", as: S.GetSize.self)
        nvrtcGetCUBIN = try library.required("nvrtcGetCUBIN", as: S.GetBytes.self)
    }

    /// Throws `CUDAError.nvrtc` naming `function` when `result` is not NVRTC_SUCCESS (0).
    @inline(__always)
    func check(_ result: NVRTCResult, _ function: StaticString) throws(CUDAError) {
        if result != 0 { throw error(result, function: "\(function)") }
    }

    func error(_ result: NVRTCResult, function: String, detail: String = "") -> CUDAError {
        var message = errorString(result)
        if !detail.isEmpty { message += "\n" + detail }
        return .nvrtc(function: function, code: result, message: message)
    }

    func errorString(_ result: NVRTCResult) -> String {
        guard let text = nvrtcGetErrorString(result) else { return "unrecognized NVRTC error code" }
        return String(cString: text)
    }

    /// NVRTC_ERROR_COMPILATION: the source did not compile; the program log says why.
    static let errorCompilation: NVRTCResult = 6

    /// Reads a byte result of `program` (log, PTX or CUBIN) through its size and copy functions.
    /// `dropTrailingNUL` removes the terminator NVRTC counts in text sizes.
    func bytes(
        of program: OpaquePointer?, size: S.GetSize, sizeName: StaticString,
        copy: S.GetBytes, copyName: StaticString, dropTrailingNUL: Bool
    ) throws(CUDAError) -> [UInt8] {
        var count = 0
        try check(size(program, &count), sizeName)
        guard count > 0 else { return [] }
        var failure: NVRTCResult = 0
        var result = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            failure = copy(program, UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self))
            initialized = failure == 0 ? count : 0
        }
        try check(failure, copyName)
        if dropTrailingNUL { while result.last == 0 { result.removeLast() } }
        return result
    }
}

/// Calls `body` with a C array of NUL-terminated copies of `strings`, valid only during the call.
func withCStringArray<R, E: Error>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) throws(E) -> R
) throws(E) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
    if pointers.isEmpty { return try body(nil) }
    return try pointers.withUnsafeBufferPointer { (buffer) throws(E) -> R in try body(buffer.baseAddress) }
}
