import CUDADriver
import STACUDAKernels
import Testing

@testable import SlidingTileAttention

/// "Unavailable" (something missing on this machine) and "cuda" (a call that failed) are kinds of
/// `AttentionError`, decided by the underlying error's case, never by its message.
@Suite struct ErrorKindTests {
    @Test func missingDriversDevicesAndLibrariesAreUnavailable() {
        let unavailable: [CUDAError] = [
            .driverNotFound("libcuda.so.1: not there"), .noDevice("no devices"), .nvrtcNotFound("libnvrtc"),
            .libraryNotFound(library: "cuBLAS", tried: "libcublas.so"),
            .missingSymbol(library: "libcuda", symbol: "cuTensorMapEncodeTiled"),
        ]
        for error in unavailable {
            #expect(AttentionError(error).kind == .unavailable, "\(error)")
            #expect(AttentionError(STAKernelError.driver(error)).kind == .unavailable, "\(error)")
        }
        for error in [STAKernelError.unsupportedDevice(architecture: "sm_75", minimum: "sm_80"),
                      .requiresHopper(architecture: "sm_80"), .sharedMemoryTooSmall(needed: 2, available: 1)] {
            #expect(AttentionError(error, prefix: "the kernel").kind == .unavailable, "\(error)")
        }
    }

    /// Failed calls stay `cuda` even when their text reads like a missing piece ("not found", "no device").
    @Test func failedCallsAreCUDAErrorsWhateverTheirWords() {
        let failed: [CUDAError] = [
            .call(function: "cuModuleGetFunction", code: 500, name: "CUDA_ERROR_NOT_FOUND", message: "named symbol not found"),
            .compile(sourceName: "sta.cu", log: "error: no device function requires this"),
            .nvrtc(function: "nvrtcCompileProgram", code: 6, message: "no GPU code"),
        ]
        for error in failed {
            #expect(AttentionError(error).kind == .cuda, "\(error)")
            #expect(AttentionError(STAKernelError.driver(error), prefix: "launch").kind == .cuda, "\(error)")
        }
        #expect(AttentionError(STAKernelError.bufferTooSmall(name: "q", byteCount: 1, needed: 2)).kind == .cuda)
    }

    /// The real path: a device ordinal no machine has (or, without a GPU, no driver at all) is
    /// `unavailable`, whether or not this machine has a GPU.
    @Test func aDeviceThatIsNotThereIsUnavailable() {
        let engine = CUDAEngine()
        let error = #expect(throws: AttentionError.self) { _ = try engine.context(device: 4096) }
        #expect(error?.kind == .unavailable, "\(error?.description ?? "")")
        if (try? CUDAContext.open(device: 0)) == nil {
            let noGPU = #expect(throws: AttentionError.self) { _ = try CUDABackend(ordinal: 0, engine: engine) }
            #expect(noGPU?.kind == .unavailable, "\(noGPU?.description ?? "")")
        }
    }
}
