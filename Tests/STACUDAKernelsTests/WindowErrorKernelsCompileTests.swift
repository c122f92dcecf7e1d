import CUDADriver
import STACUDAKernels
import Testing

/// The window search's kernels compile with NVRTC (no GPU needed) for the portable and the Hopper
/// targets, without spills or a stack, and export both entry points.
@Suite(.enabled(if: nvrtcAvailable, "NVRTC is not installed"))
struct WindowErrorKernelsCompileTests {
    @Test(arguments: ["sm_80", "sm_90a"])
    func compilesWithoutSpills(_ architecture: String) throws {
        let compiled = try WindowErrorKernels.kernelSource.compile(
            with: NVRTCCompiler.load(),
            options: WindowErrorKernels.compileOptions(architecture: architecture) + ["--ptxas-options=-v"])
        #expect(compiled.format == .cubin)
        for name in [
            WindowErrorKernels.prepareFunctionName, WindowErrorKernels.errorSumsFunctionName,
            WindowErrorKernels.sumBlocksFunctionName,
        ] {
            let usage = try #require(compiled.resourceUsage.first { $0.functionName == name }, "\(compiled.log)")
            #expect(usage.architecture == architecture)
            #expect(!usage.spills, "\(compiled.log)")
            #expect(usage.stackFrameBytes == 0, "\(compiled.log)")
            // 256 threads per block and several blocks per SM: well under 64 registers.
            #expect(usage.registers > 0 && usage.registers <= 64)
        }
        // The error sums hold one double per (size, warp) in shared memory.
        let sums = try #require(compiled.resourceUsage.first { $0.functionName == WindowErrorKernels.errorSumsFunctionName })
        #expect(sums.sharedBytes == 3 * 8 * WindowErrorKernels.threadsPerBlock / 32)
    }

}
