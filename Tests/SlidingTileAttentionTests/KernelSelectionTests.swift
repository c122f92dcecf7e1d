import SlidingTileAttention
import Testing

/// Devices by their properties: the choice needs no GPU.
let a100 = CUDADeviceProperties(ordinal: 0, name: "A100", computeCapability: (8, 0), sharedMemoryPerBlockOptin: 232_448)
let h200 = CUDADeviceProperties(ordinal: 0, name: "H200", computeCapability: (9, 0), sharedMemoryPerBlockOptin: 232_448)
let rtx4090 = CUDADeviceProperties(ordinal: 1, name: "RTX 4090", computeCapability: (8, 9), sharedMemoryPerBlockOptin: 101_376)
let t4 = CUDADeviceProperties(ordinal: 0, name: "T4", computeCapability: (7, 5), sharedMemoryPerBlockOptin: 65_536)

func call(
    _ dtype: DType = .bfloat16, headDim: Int = 128, _ direction: AttentionDirection = .forward, batch: Int = 1
) throws -> AttentionCall {
    let layout = try STALayout(canvas: [12, 16, 16], tile: [6, 8, 8], textCount: 16)
    let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1, 1]), heads: 2)
    return AttentionCall(plan: plan, batch: batch, headDim: headDim, dtype: dtype, direction: direction)
}

@Suite struct KernelSelectionTests {
    @Test func automaticTakesHopperOnComputeCapability9AndPortableElsewhere() throws {
        #expect(try KernelSelection.choose(.automatic, call(), on: .cuda(h200)) == .hopper)
        #expect(try KernelSelection.choose(.automatic, call(), on: .cuda(a100)) == .portable)
        #expect(try KernelSelection.choose(.automatic, call(.float16, headDim: 64), on: .cuda(rtx4090)) == .portable)
        #expect(try KernelSelection.choose(.automatic, call(.float32, headDim: 40), on: .cpu) == .cpu)
    }

    @Test func backwardTakesTheHopperKernelsOnHopperAndThePortableOnesElsewhere() throws {
        #expect(try KernelSelection.choose(.automatic, call(.bfloat16, .backward), on: .cuda(h200)) == .hopper)
        #expect(try KernelSelection.choose(.automatic, call(.float16, headDim: 64, .backward), on: .cuda(h200)) == .hopper)
        #expect(try KernelSelection.choose(.automatic, call(.bfloat16, .backward), on: .cuda(a100)) == .portable)
        // The deterministic path stays reachable on Hopper by name.
        #expect(try KernelSelection.choose(.portable, call(.bfloat16, .backward), on: .cuda(h200)) == .portable)
        let refusal = #expect(throws: AttentionError.self) {
            try KernelSelection.choose(.hopper, call(.bfloat16, .backward), on: .cuda(a100))
        }
        #expect(refusal?.kind == .unavailable)
        #expect(refusal?.description.contains("it needs compute capability 9.x") == true)
        let headDim = #expect(throws: AttentionError.self) {
            try KernelSelection.choose(.hopper, call(.bfloat16, headDim: 96, .backward), on: .cuda(h200))
        }
        #expect(headDim?.description.contains("head dim 96 is not supported; allowed: 64, 128") == true)
    }

    @Test func onlyTheHopperBackwardIsNotBitReproducible() {
        #expect(!AttentionKernel.hopper.isDeterministic(.backward))
        #expect(AttentionKernel.hopper.isDeterministic(.forward))
        #expect(AttentionKernel.portable.isDeterministic(.backward))
        #expect(AttentionKernel.cpu.isDeterministic(.backward))
    }

    @Test func callProblemsAreInvalidArgumentsAndNameWhatIsAllowed() throws {
        let dtype = #expect(throws: AttentionError.self) { try KernelSelection.choose(.automatic, call(.float32), on: .cuda(h200)) }
        #expect(dtype?.kind == .invalidArgument)
        #expect(dtype?.description == "no CUDA kernel can run forward attention in f32 at head dim 128: dtype f32 is not supported; allowed: bf16, f16")
        let headDim = #expect(throws: AttentionError.self) { try KernelSelection.choose(.portable, call(headDim: 96), on: .cuda(a100)) }
        #expect(headDim?.description.contains("head dim 96 is not supported; allowed: 64, 128") == true)
        let batch = #expect(throws: AttentionError.self) { try KernelSelection.choose(.portable, call(batch: 70_000), on: .cuda(a100)) }
        #expect(batch?.description.contains("over the CUDA grid limit") == true)
        // The same refusal before any device is known.
        let early = #expect(throws: AttentionError.self) { try KernelSelection.checkCall(.automatic, call(.float32), onCUDA: true) }
        #expect(early == dtype)
    }

    @Test func deviceProblemsAreUnavailableErrorsNamingTheDevice() throws {
        let old = #expect(throws: AttentionError.self) { try KernelSelection.choose(.automatic, call(), on: .cuda(t4)) }
        #expect(old?.kind == .unavailable)
        #expect(old?.description.contains("the hopper kernel: it needs compute capability 9.x") == true)
        #expect(old?.description.contains("the portable kernel: it needs compute capability 8.0 or newer; the device is sm_75") == true)
        let hopper = #expect(throws: AttentionError.self) { try KernelSelection.choose(.hopper, call(), on: .cuda(a100)) }
        #expect(hopper?.kind == .unavailable)
        // Shared memory: the portable kernel at head dim 128 fits a 4090's 99 KiB, its backward does not.
        #expect(try KernelSelection.choose(.automatic, call(), on: .cuda(rtx4090)) == .portable)
        let shared = #expect(throws: AttentionError.self) {
            try KernelSelection.choose(.automatic, call(.bfloat16, .backward), on: .cuda(rtx4090))
        }
        #expect(shared?.description.contains("bytes of shared memory per block; the device allows 101376") == true)
        #expect(shared?.kind == .unavailable)
    }

    @Test func kernelsAndDevicesMustMatch() throws {
        let gpuOnCPU = #expect(throws: AttentionError.self) { try KernelSelection.choose(.portable, call(), on: .cpu) }
        #expect(gpuOnCPU?.description == "the portable kernel cannot run this call: it runs on a CUDA device, not on the CPU")
        let cpuOnGPU = #expect(throws: AttentionError.self) { try KernelSelection.choose(.cpu, call(), on: .cuda(h200)) }
        #expect(cpuOnGPU?.kind == .invalidArgument)
    }

    @Test func allMeansEveryKernelTheDeviceRuns() {
        #expect(KernelSelection.cudaKernels(.forward, on: h200) == [.portable, .hopper])
        #expect(KernelSelection.cudaKernels(.backward, on: h200) == [.portable, .hopper])
        #expect(KernelSelection.cudaKernels(.backward, on: a100) == [.portable])
        #expect(KernelSelection.automaticKernel(.backward, on: h200) == .hopper)
        #expect(KernelSelection.cudaKernels(.forward, on: t4) == [])
        #expect(KernelSelection.automaticKernel(.forward, on: h200) == .hopper)
        #expect(KernelSelection.automaticKernel(.forward, on: a100) == .portable)
    }

    @Test func kernelNamesParseAndUnknownNamesListTheAllowedOnes() throws {
        #expect(try KernelPreference(name: "AUTO") == .automatic)
        #expect(try KernelPreference(name: "") == .automatic)
        #expect(try KernelPreference(name: "sm_90a") == .hopper)
        #expect(try KernelPreference(name: "Portable") == .portable)
        let unknown = #expect(throws: AttentionError.self) { try KernelPreference(name: "turbo") }
        #expect(unknown?.description.contains("allowed: \"auto\", \"cpu\", \"portable\"") == true)
    }
}

@Suite struct ScaleRuleTests {
    @Test func zeroOrNoneMeansOneOverRootD() throws {
        #expect(try AttentionScale.resolve(nil as Double?, headDim: 64) == 0.125)
        #expect(try AttentionScale.resolve(0.0, headDim: 16) == 0.25)
        #expect(try AttentionScale.resolve(0.5 as Float, headDim: 16) == 0.5)
    }

    @Test(arguments: [-0.5, -.infinity, .infinity, .nan, 1e300, 1e-300])
    func nonPositiveOrNonFiniteScalesAreRefused(_ scale: Double) {
        let error = #expect(throws: AttentionError.self) { try AttentionScale.resolve(scale, headDim: 64) }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.description.hasPrefix("scale is ") == true)
    }
}
