import Testing

@testable import CUDADriver

private let saxpySource = """
    extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }
    """

@Suite(.enabled(if: nvrtcAvailable, "NVRTC was not found")) struct NVRTCTests {
    let compiler = loadedNVRTC!

    @Test func versionIsPlausible() {
        #expect(compiler.version.major >= 11)
    }

    @Test(arguments: ["sm_80", "sm_90a"])
    func compilesCubinWithResourceUsage(architecture: String) throws {
        let kernel = try compiler.compile(
            source: saxpySource, sourceName: "saxpy.cu",
            options: ["-arch=\(architecture)", "--ptxas-options=-v", "-std=c++17"])
        #expect(kernel.format == .cubin)
        #expect(kernel.image.count > 4)
        #expect(Array(kernel.image.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])  // "\u{7F}ELF"
        let usage = kernel.resourceUsage
        let saxpy = try #require(usage.first { $0.functionName == "saxpy" }, "log: \(kernel.log)")
        #expect(saxpy.architecture == architecture)
        #expect(saxpy.registers > 0)
        #expect(saxpy.spillStoreBytes == 0)
        #expect(saxpy.spillLoadBytes == 0)
        #expect(!saxpy.spills)
    }

    @Test func staticSharedMemoryIsReported() throws {
        let source = """
            extern "C" __global__ void reverse(float* y) {
                __shared__ float tile[256];
                tile[threadIdx.x] = y[threadIdx.x];
                __syncthreads();
                y[threadIdx.x] = tile[255 - threadIdx.x];
            }
            """
        let kernel = try compiler.compile(
            source: source, sourceName: "reverse.cu", options: ["-arch=sm_90a", "--ptxas-options=-v"])
        let usage = try #require(kernel.resourceUsage.first, "log: \(kernel.log)")
        #expect(usage.functionName == "reverse")
        #expect(usage.sharedBytes == 256 * 4)
        #expect(usage.registers > 0)
    }

    @Test func withoutARealArchitectureTheImageIsPTX() throws {
        let kernel = try compiler.compile(source: saxpySource, sourceName: "saxpy.cu", options: ["-arch=compute_80"])
        #expect(kernel.format == .ptx)
        #expect(kernel.image.last == 0)
        let text = String(decoding: kernel.image.dropLast(), as: UTF8.self)
        #expect(text.contains(".entry saxpy"))
    }

    @Test func headersAreVisibleToInclude() throws {
        let kernel = try compiler.compile(
            source: "#include \"scale.h\"\nextern \"C\" __global__ void k(float* y) { y[0] = SCALE; }",
            sourceName: "with_header.cu", options: ["-arch=sm_80"],
            headers: [(name: "scale.h", source: "#define SCALE 2.0f\n")])
        #expect(CompiledKernel.isELF(kernel.image))
    }

    @Test func syntaxErrorThrowsCompileWithTheSourceNameInTheLog() {
        do {
            _ = try compiler.compile(
                source: "extern \"C\" __global__ void broken(float* y) { y[0] = 1.0f }",
                sourceName: "broken_kernel.cu", options: ["-arch=sm_80"])
            Issue.record("a kernel with a syntax error compiled")
        } catch {
            guard case .compile(let sourceName, let log) = error else {
                Issue.record("expected compile, got \(error)")
                return
            }
            #expect(sourceName == "broken_kernel.cu")
            #expect(log.contains("broken_kernel.cu"))
            #expect(error.description.contains("broken_kernel.cu"))
        }
    }

    @Test func unknownOptionIsAnNVRTCError() {
        do {
            _ = try compiler.compile(source: saxpySource, sourceName: "saxpy.cu", options: ["--no-such-option"])
            Issue.record("an unknown option was accepted")
        } catch {
            guard case .nvrtc(let function, let code, _) = error else {
                Issue.record("expected nvrtc, got \(error)")
                return
            }
            #expect(function.hasPrefix("nvrtcCompileProgram"))
            #expect(code != 0)
        }
    }

    @Test func explicitMissingPathIsNotFoundAndNamesTheVariable() {
        do {
            _ = try NVRTCCompiler.load(path: "/nonexistent/libnvrtc.so.13")
            Issue.record("a missing NVRTC path loaded")
        } catch {
            guard case .nvrtcNotFound(let message) = error else {
                Issue.record("expected nvrtcNotFound, got \(error)")
                return
            }
            #expect(message.contains("/nonexistent/libnvrtc.so.13"))
            #expect(message.contains("STA_NVRTC_PATH"))
        }
    }
}

@Suite struct NVRTCOptionTests {
    @Test func architectureOptionForms() {
        #expect(NVRTCCompiler.targetArchitecture(in: ["-arch=sm_90a"]) == "sm_90a")
        #expect(NVRTCCompiler.targetArchitecture(in: ["-O3", "--gpu-architecture=sm_80"]) == "sm_80")
        #expect(NVRTCCompiler.targetArchitecture(in: ["-arch", "compute_90"]) == "compute_90")
        #expect(NVRTCCompiler.targetArchitecture(in: ["-arch=sm_80", "-arch=sm_90a"]) == "sm_90a")
        #expect(NVRTCCompiler.targetArchitecture(in: ["-O3", "-lineinfo"]) == nil)
    }

    @Test func resourceUsageParsingOfAPtxasLog() {
        let log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Function properties for helper
                16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Compiling entry function 'first' for 'sm_90a'
            ptxas info    : Function properties for first
            ptxas         .     24 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
            ptxas info    : Used 168 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]
            ptxas info    : Compiling entry function 'second' for 'sm_90a'
            ptxas info    : Function properties for second
                0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 32 registers, 384 bytes cmem[0]
            ptxas info    : (C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'second'
            """
        let usage = KernelResourceUsage.parse(ptxasLog: log)
        #expect(usage.map(\.functionName) == ["first", "second"])
        #expect(usage.map(\.registers) == [168, 32])
        #expect(usage.map(\.sharedBytes) == [2048, 0])
        #expect(usage.map(\.stackFrameBytes) == [24, 0])
        #expect(usage.map(\.spillStoreBytes) == [8, 0])
        #expect(usage.map(\.spillLoadBytes) == [12, 0])
        #expect(usage.map(\.spills) == [true, false])
        #expect(usage.map(\.serializesWGMMA) == [false, true])
        #expect(KernelResourceUsage.parse(ptxasLog: "").isEmpty)
    }
}
