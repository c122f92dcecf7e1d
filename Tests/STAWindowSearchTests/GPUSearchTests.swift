import CUDADriver
import SlidingTileAttention
import STAGeometry
import STATensors
import Testing

@testable import STAWindowSearch

/// The GPU measurer, where a CUDA device and NVRTC are present (skipped elsewhere): on bf16 and f32
/// captures with holes and padded text it agrees with the CPU reference (`SearchAgreement`), it refuses a
/// non-finite capture with the CPU's message, and device tensors give what the file gives.
let gpuMeasurer: CUDAWindowMeasurer? = try? CUDAWindowMeasurer(device: 0)

@Suite(.enabled(if: gpuMeasurer != nil, "needs a CUDA GPU and NVRTC"), .serialized)
struct GPUSearchTests {
    /// Canvas 5×12×20 in tiles of 2×4×8 (holes on two axes), 40 text tokens of which 25 valid.
    func layout() throws -> STALayout {
        try STALayout(canvas: [5, 12, 20], tile: [2, 4, 8], textCount: 40, textValid: 25)
    }

    let kinds: [HeadKind] = [.positional([2, 2, 2]), .random, .positional([3, 0, 0]), .positional([0.2, 0.2, 0.2])]

    /// A capture whose tensors are stored as `dtype`; with `poison`, k[index] = value.
    func capture(
        _ dtype: DType, step: Int, prompt: String, seed: UInt64, kinds: [HeadKind]? = nil, poison: (Int, Float)? = nil
    ) throws -> ActivationCapture {
        let layout = try layout()
        let kinds = kinds ?? self.kinds
        let (q, original, v) = syntheticActivations(layout: layout, kinds: kinds, headDim: 128, seed: seed)
        var k = original
        if let (index, value) = poison { k[index] = value }
        let shape = [1, kinds.count, layout.sequenceLength, 128]
        func stored(_ values: [Float]) throws -> HostTensor {
            dtype == .bfloat16
                ? try HostTensor(shape: shape, values: values.map(BFloat16.init)) : try HostTensor(shape: shape, values: values)
        }
        let bytes = try ActivationCapture.encode(
            q: stored(q), k: stored(k), v: stored(v), step: step, layer: 0, prompt: prompt)
        return try ActivationCapture(file: SafetensorsFile(bytes: bytes, name: "gpu-\(dtype)-\(prompt)"), layout: layout)
    }

    func searches(_ dtype: DType, kinds: [HeadKind]? = nil) throws -> (cpu: WindowSearch, gpu: WindowSearch) {
        let measurer = try #require(gpuMeasurer)
        var cpu = try WindowSearch(layout: layout(), fullSteps: 0)
        var gpu = try WindowSearch(layout: layout(), fullSteps: 0, measurer: measurer)
        for prompt in 0..<2 {
            let capture = try capture(dtype, step: 4, prompt: "\(prompt)", seed: UInt64(prompt + 5), kinds: kinds)
            try cpu.add(capture)
            try gpu.add(capture)
        }
        return (cpu, gpu)
    }

    @Test func bf16CapturesAgreeWithTheCPU() throws {
        let (cpu, gpu) = try searches(.bfloat16)
        for rule in [SelectionRule.smallestError, .errorTolerance(0.1), .densityBudget(0.4)] {
            let agreement = try SearchAgreement(reference: cpu, search: gpu, rule: rule)
            #expect(agreement.passed, "\(rule): worst \(agreement.worstRatio) at \(agreement.worstEntry); \(agreement.mismatches)")
        }
    }

    /// f32 captures are rounded to bf16 on the device, which the CPU does not do: with diffuse heads
    /// (scores of order 1, so rounding q and k moves them by about 2⁻⁹) the agreement needs a floor of a
    /// few bf16 steps more. (Sharply local heads with scores in the hundreds would move by whole units.)
    @Test func f32CapturesAreConvertedOnTheDevice() throws {
        let (cpu, gpu) = try searches(.float32, kinds: [.random, .random])
        let agreement = try SearchAgreement(reference: cpu, search: gpu, rule: .smallestError, tolerance: 0.02, floor: 4.0 / 256)
        #expect(agreement.structureProblem == nil)
        #expect(agreement.worstRatio <= 1, "worst \(agreement.worstRatio) at \(agreement.worstEntry)")
    }

    @Test func aNonFiniteCaptureIsRefusedWithTheCPUMessage() throws {
        let layout = try layout()
        let measurer = try #require(gpuMeasurer)
        // Head 2, row 37 (a real token of tile 0), column 3.
        let index = (2 * layout.sequenceLength + 37) * 128 + 3
        let poisoned = try capture(.bfloat16, step: 4, prompt: "nan", seed: 9, poison: (index, .infinity))
        var cpu = try WindowSearch(layout: layout, fullSteps: 0)
        var gpu = try WindowSearch(layout: layout, fullSteps: 0, measurer: measurer)
        let cpuError = #expect(throws: WindowSearchError.self) { try cpu.add(poisoned) }
        let gpuError = #expect(throws: WindowSearchError.self) { try gpu.add(poisoned) }
        #expect(cpuError == gpuError)
        guard case let .nonFiniteActivation(_, name, position, value, count)? = gpuError else {
            Issue.record("expected nonFiniteActivation, got \(String(describing: gpuError))")
            return
        }
        #expect(name == "k" && position == [0, 2, 37, 3] && value == .infinity && count == 1)
    }

    @Test func deviceTensorsGiveWhatTheFileGives() throws {
        let measurer = try #require(gpuMeasurer)
        let layout = try layout()
        let capture = try capture(.bfloat16, step: 4, prompt: "device", seed: 3)
        let search = try WindowSearch(layout: layout, fullSteps: 0)
        let fromFile = try measurer.measure(
            capture, candidates: search.candidates, layout: layout, rows: search.rows, next: nil)
        let buffers = try ActivationCapture.tensorNames.map { name in
            try capture.withStoredBytes(of: name) { bytes in
                let buffer = try DeviceBuffer(context: measurer.backend.context, byteCount: bytes.count)
                try buffer.copy(from: bytes)
                return buffer
            }
        }
        let fromDevice = try measurer.measure(
            q: buffers[0], k: buffers[1], v: buffers[2], dtype: .bfloat16, batch: 1, heads: kinds.count, headDim: 128,
            candidates: search.candidates, layout: layout)
        #expect(fromDevice == fromFile)
    }
}
