import CUDADriver
import STACUDAKernels
import SlidingTileAttention
import Testing

@testable import STACommand

/// Exit statuses 69 (unavailable) and 70 (a failed CUDA call) come from the error's kind, not its text.
@Suite struct ExitStatusTests {
    @Test func attentionErrorKindsMapToTheirStatus() {
        #expect(ExitStatus.of(AttentionError(.unavailable, "a message without any telling words")) == .unavailable)
        // Words that once decided 69 by matching no longer do: the kind decides.
        #expect(ExitStatus.of(AttentionError(.cuda, "cuModuleGetFunction: named symbol not found; no device code")) == .internalError)
        #expect(ExitStatus.of(AttentionError(.cpu, "no GPU requires this")) == .internalError)
        #expect(ExitStatus.of(AttentionError(.invalidArgument, "head dim 96 is not supported")) == .usage)
    }

    @Test func driverAndKernelErrorsMapByCase() {
        #expect(ExitStatus.of(CUDAError.nvrtcNotFound("libnvrtc.so")) == .unavailable)
        #expect(ExitStatus.of(CUDAError.call(function: "cuLaunchKernel", code: 1, name: "X", message: "not found")) == .internalError)
        #expect(ExitStatus.of(STAKernelError.requiresHopper(architecture: "sm_80")) == .unavailable)
        #expect(ExitStatus.of(STAKernelError.driver(.noDevice("none"))) == .unavailable)
        #expect(ExitStatus.of(STAKernelError.driver(.compile(sourceName: "a.cu", log: "requires"))) == .internalError)
        #expect(ExitStatus.of(STAKernelError.unsupportedHeadDim(96, allowed: [64, 128])) == .usage)
    }

    /// The real path on a machine without a GPU: checking the GPU kernels exits 69 (`demo` and `search`
    /// fall back to the CPU instead).
    @Test(.enabled(if: (try? CUDAContext.open(device: 0)) == nil, "this machine has a CUDA GPU"))
    func withoutAGPUTheGPUCommandsAreUnavailable() {
        for arguments in [["verify"], ["verify", "--backward"], ["verify", "--kernel", "portable"]] {
            let outcome = STA.outcome(arguments)
            #expect(outcome.status == .unavailable, "\(arguments): \(outcome)")
            #expect(outcome.message?.isEmpty == false)
        }
    }
}
