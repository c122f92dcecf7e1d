#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The one place that declares and calls cuBLAS's C functions. cuBLAS serves one purpose here: the bf16
// matrix-product rate that benchmarks report beside their own figures, measured in the same run.

/// C signatures of the cuBLAS functions, as declared in cublas_api.h.
enum CUBLASSignature {
    typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
    typealias SetStream = @convention(c) (OpaquePointer?, CUhandle?) -> Int32
    /// (handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
    /// computeType, algo)
    typealias GemmEx =
        @convention(c) (
            OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer?, UInt64, Int32, Int32,
            UInt64, Int32, Int32, UnsafeRawPointer?, UInt64, Int32, Int32, Int32, Int32
        ) -> Int32
}

/// A cuBLAS handle on a context, opened at run time like the driver.
///
/// Searched at `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64`, `/usr/local/cuda/lib64`, the loader's own
/// search (libcublas.so.13, .12), then pip's nvidia wheels.
public final class CUBLAS: @unchecked Sendable {
    typealias S = CUBLASSignature
    public let context: CUDAContext
    private let handle: OpaquePointer
    private let destroy: S.Destroy
    private let setStream: S.SetStream
    private let gemmEx: S.GemmEx

    // Values from library_types.h and cublas_api.h.
    static let operationNone: Int32 = 0
    static let dataTypeBF16: Int32 = 14
    static let dataTypeF32: Int32 = 0
    static let computeF32: Int32 = 68
    static let algorithmDefault: Int32 = -1

    public init(context: CUDAContext) throws(CUDAError) {
        let names = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
        var candidates = [String]()
        for root in [environmentValue("CUDA_HOME"), environmentValue("CUDA_PATH"), "/usr/local/cuda"].compactMap({ $0 }) {
            candidates += names.map { root + "/lib64/" + $0 }
        }
        candidates += names
        candidates += NVRTCCompiler.pythonWheelCandidates(["nvidia/cu13/lib/libcublas.so.*", "nvidia/cublas/lib/libcublas.so.*"])
        let library: DynamicLibrary
        switch DynamicLibrary.openFirst(candidates) {
        case .success(let opened): library = opened
        case .failure(let error): throw .libraryNotFound(library: "cuBLAS", tried: error.message)
        }
        self.context = context
        let create = try library.required("cublasCreate_v2", as: S.Create.self)
        destroy = try library.required("cublasDestroy_v2", as: S.Destroy.self)
        setStream = try library.required("cublasSetStream_v2", as: S.SetStream.self)
        gemmEx = try library.required("cublasGemmEx", as: S.GemmEx.self)
        try context.makeCurrent()
        var handle: OpaquePointer? = nil
        try Self.check(create(&handle), "cublasCreate_v2")
        guard let handle else { throw .invalidArgument(function: "cublasCreate_v2", message: "cuBLAS returned no handle") }
        self.handle = handle
    }

    deinit {
        _ = context.driver.cuCtxSetCurrent(context.handle)
        _ = destroy(handle)
    }

    /// C = A · B for column-major bf16 matrices (A m×k, B k×n, C m×n), fp32 accumulation, on `stream`.
    /// Cost: 2·m·n·k FLOP.
    public func multiplyBF16(
        m: Int, n: Int, k: Int, a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, stream: CUDAStream?
    ) throws(CUDAError) {
        guard m > 0, n > 0, k > 0, a.byteCount >= m * k * 2, b.byteCount >= k * n * 2, c.byteCount >= m * n * 2 else {
            throw .invalidArgument(function: "cublasGemmEx", message: "matrix sizes \(m)×\(n)×\(k) do not fit the buffers")
        }
        try context.makeCurrent()
        try Self.check(setStream(handle, stream?.handle), "cublasSetStream_v2")
        var alpha: Float = 1
        var beta: Float = 0
        let status = withUnsafeBytes(of: &alpha) { alpha in
            withUnsafeBytes(of: &beta) { beta in
                gemmEx(
                    handle, Self.operationNone, Self.operationNone, Int32(m), Int32(n), Int32(k), alpha.baseAddress,
                    a.address, Self.dataTypeBF16, Int32(m), b.address, Self.dataTypeBF16, Int32(k), beta.baseAddress,
                    c.address, Self.dataTypeBF16, Int32(m), Self.computeF32, Self.algorithmDefault)
            }
        }
        try Self.check(status, "cublasGemmEx")
    }

    static func check(_ status: Int32, _ function: String) throws(CUDAError) {
        if status != 0 { throw .call(function: function, code: status, name: "CUBLAS_STATUS_\(status)", message: "cuBLAS error") }
    }
}
