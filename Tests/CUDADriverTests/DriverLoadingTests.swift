import Testing

@testable import CUDADriver

@Suite struct DriverLoadingTests {
    @Test func missingDriverPathThrowsDriverNotFound() {
        do {
            _ = try CUDAContext.open(device: 0, driverCandidates: ["/nonexistent/libcuda.so.1"])
            Issue.record("opening a context through a missing driver succeeded")
        } catch {
            guard case .driverNotFound(let tried) = error else {
                Issue.record("expected driverNotFound, got \(error)")
                return
            }
            #expect(error.description.hasPrefix("no CUDA driver found:"))
            #expect(tried.contains("/nonexistent/libcuda.so.1"))
            #expect(error.description.contains("STA_CUDA_DRIVER_PATH"))
        }
    }

    @Test func aLibraryThatIsNotTheDriverReportsTheMissingSymbol() {
        // libc loads but exports no cuInit.
        do {
            _ = try CUDAContext.open(device: 0, driverCandidates: ["libc.so.6"])
            Issue.record("libc was accepted as a CUDA driver")
        } catch {
            guard case .missingSymbol(let library, let symbol) = error else {
                Issue.record("expected missingSymbol, got \(error)")
                return
            }
            #expect(library == "libc.so.6")
            #expect(symbol.hasPrefix("cu"))
        }
    }

    @Test func defaultOpenThrowsOrGivesAUsableContext() {
        // Without a GPU this must throw driverNotFound or noDevice, never crash; with one it must open.
        do {
            let context = try CUDAContext.open()
            #expect(!context.deviceName.isEmpty)
            #expect(context.computeCapability.major >= 3)
            #expect(context.multiprocessorCount > 0)
        } catch {
            switch error {
            case .driverNotFound, .noDevice: break
            default: Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func outOfRangeOrdinalIsNoDeviceWhenADriverIsPresent() {
        guard (try? CUDAContext.deviceCount()) != nil else { return }
        #expect(throws: CUDAError.self) { try CUDAContext.open(device: -1) }
        #expect(throws: CUDAError.self) { try CUDAContext.open(device: 1 << 20) }
    }

    @Test(arguments: [
        (8, 0, "sm_80"), (8, 6, "sm_86"), (8, 9, "sm_89"), (9, 0, "sm_90a"), (10, 0, "sm_100"), (12, 0, "sm_120"),
    ])
    func architectureNames(major: Int, minor: Int, expected: String) {
        #expect(CUDAContext.architecture(major: major, minor: minor) == expected)
    }

    @Test func errorDescriptionsNameTheCallAndTheError() {
        let call = CUDAError.call(
            function: "cuMemAlloc_v2", code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY", message: "out of memory")
        #expect(call.description.contains("cuMemAlloc_v2"))
        #expect(call.description.contains("CUDA_ERROR_OUT_OF_MEMORY"))
        #expect(call.description.contains("out of memory"))
        let compile = CUDAError.compile(sourceName: "attention.cu", log: "attention.cu(3): error: expected a \";\"\n")
        #expect(compile.description.contains("attention.cu(3): error"))
        #expect(compile.description.hasPrefix("NVRTC could not compile attention.cu"))
    }
}
