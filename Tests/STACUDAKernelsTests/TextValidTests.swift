import CUDADriver
import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACUDAKernels

/// The launchers' buffer checks, on a buffer's facts (no GPU needed).
@Suite struct LaunchArgumentCheckTests {
    private func check(
        deviceOrdinal: Int = 0, byteCount: Int, address: UInt64 = 0x7f00_0000_0000, needed: Int, alignment: Int = 4
    ) throws(STAKernelError) {
        try checkBuffer(
            "textValid", deviceOrdinal: deviceOrdinal, byteCount: byteCount, address: address, needed: needed,
            alignment: alignment, kernelDeviceOrdinal: 0)
    }

    @Test func aBufferOfEnoughAlignedBytesOnTheKernelsDevicePasses() throws {
        try check(byteCount: 8, needed: 8)
        try check(byteCount: 64, address: 0x7f00_0000_0104, needed: 8)
    }

    @Test func aShortTextValidArrayNamesWhatItNeeds() {
        do {
            try check(byteCount: 4, needed: 8)
            Issue.record("4 bytes for 2 rows were accepted")
        } catch {
            guard case .bufferTooSmall(let name, let byteCount, let needed) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(name == "textValid" && byteCount == 4 && needed == 8)
            #expect(error.description.contains("textValid") && error.description.contains("8"))
        }
    }

    @Test func aMisalignedAddressIsRejected() {
        do {
            try check(byteCount: 64, address: 0x7f00_0000_0002, needed: 8)
            Issue.record("an address 2 bytes into an allocation was accepted")
        } catch {
            #expect(error.description.contains("textValid"))
            #expect(error.description.contains("multiple of 4"))
        }
    }

    @Test func aBufferOnAnotherDeviceIsRejected() {
        do {
            try check(deviceOrdinal: 1, byteCount: 64, needed: 8)
            Issue.record("a buffer of device 1 was accepted by a kernel of device 0")
        } catch {
            guard case .foreignBuffer(let name) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(name == "textValid")
        }
    }

    @Test func noKernelSourceMentionsACompileTimeValidLength() {
        for source in [
            STAForwardKernel.source, STAForwardHopperKernel.source, STABackwardKernel.source, STABackwardHopperKernel.source,
        ] {
            #expect(!source.contains("STA_TEXT_VALID"))
            #expect(source.contains("const int* __restrict__ text_valid, int default_text_valid")
                || source.contains("const int* text_valid, int default_text_valid"))
        }
    }
}

// MARK: - On the GPU

/// The first GPU when NVRTC is present too, or nil (then the GPU tests are skipped).
let kernelTestContext: CUDAContext? = nvrtcAvailable ? try? CUDAContext.open() : nil

/// Uniform values in [-2, 2) from a fixed 64-bit LCG, rounded to bf16.
private func randomBFloat16(_ count: Int, seed: UInt64) -> [BFloat16] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return BFloat16(Float(state >> 40) / Float(1 << 24) * 4 - 2)
    }
}

/// A batch of two rows whose prompts have 77 and 256 valid text tokens of 256, on a padded canvas
/// (holes along T and W) with a small and a large window: every masking path of the kernels at once.
private struct TextRowsProblem {
    static let textValid = [77, 256]
    let headDim: Int
    let batch = 2
    let plan: AttentionPlan

    init(headDim: Int) throws {
        self.headDim = headDim
        plan = try Self.plan(textValid: 256)
    }

    /// The plan with `textValid` valid text tokens (what the reference of one batch row uses).
    static func plan(textValid: Int) throws -> AttentionPlan {
        try AttentionPlan(
            layout: STALayout(canvas: [10, 16, 20], tile: [4, 8, 8], textCount: 256, textValid: textValid),
            headWindows: [Window(tiles: [1, 1, 1]), Window(tiles: [3, 3, 3])])
    }

    var rowElements: Int { plan.heads * plan.layout.sequenceLength * headDim }
    var rowPositions: Int { plan.heads * plan.layout.sequenceLength }

    /// Elements [b · rowElements, (b + 1) · rowElements) of `values`: batch row b.
    func row<T>(_ values: [T], _ b: Int, length: Int) -> [T] { Array(values[(b * length)..<((b + 1) * length)]) }
}

@Suite(.enabled(if: kernelTestContext != nil, "needs a CUDA GPU and NVRTC"), .serialized)
struct PerRowTextGPUTests {
    let context = kernelTestContext!

    private func upload(_ values: [Int32]) throws -> DeviceBuffer { try DeviceBuffer(context: context, copying: values) }
    private func upload(_ values: [Float]) throws -> DeviceBuffer { try DeviceBuffer(context: context, copying: values) }
    private func upload(_ values: [BFloat16]) throws -> DeviceBuffer {
        try DeviceBuffer(context: context, copying: values.map(\.bitPattern))
    }
    private func download(_ buffer: DeviceBuffer, count: Int) throws -> [BFloat16] {
        try buffer.download(as: UInt16.self, count: count).map { BFloat16(bitPattern: $0) }
    }

    private func forward(
        _ choice: ForwardKernelChoice, _ problem: TextRowsProblem, q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer,
        textValid: [Int32]?
    ) throws -> (output: [BFloat16], lse: [Float]) {
        let kernel = try choice.make(
            context: context, plan: problem.plan, headDim: problem.headDim, dtype: .bfloat16, cache: KernelCache())
        let output = try DeviceBuffer(context: context, byteCount: kernel.tensorByteCount(batch: problem.batch))
        let lse = try DeviceBuffer(context: context, byteCount: kernel.lseByteCount(batch: problem.batch))
        try output.fill(byte: 0xFF)
        try lse.fill(byte: 0xFF)
        let lengths = try textValid.map { try upload($0) }
        try kernel.launch(
            q: q, k: k, v: v, output: output, lse: lse, batch: problem.batch, scale: 1 / Float(problem.headDim).squareRoot(),
            textValid: lengths, stream: nil)
        try context.synchronize()
        return (
            try download(output, count: problem.batch * problem.rowElements),
            try lse.download(as: Float.self, count: problem.batch * problem.rowPositions)
        )
    }

    @Test(arguments: [ForwardKernelChoice.portable, .hopper], [64, 128])
    func forwardRowsMatchTheReferenceOfTheirOwnLength(choice: ForwardKernelChoice, headDim: Int) throws {
        guard choice != .hopper || context.computeCapability.major == 9 else { return }
        let problem = try TextRowsProblem(headDim: headDim)
        let count = problem.batch * problem.rowElements
        let (q, k, v) = (randomBFloat16(count, seed: 1), randomBFloat16(count, seed: 2), randomBFloat16(count, seed: 3))
        let (dq, dk, dv) = (try upload(q), try upload(k), try upload(v))
        let result = try forward(choice, problem, q: dq, k: dk, v: dv, textValid: TextRowsProblem.textValid.map(Int32.init))
        for b in 0..<problem.batch {
            let plan = try TextRowsProblem.plan(textValid: TextRowsProblem.textValid[b])
            let reference = try ReferenceAttention.forward(
                q: problem.row(q, b, length: problem.rowElements), k: problem.row(k, b, length: problem.rowElements),
                v: problem.row(v, b, length: problem.rowElements), batch: 1, headDim: headDim, plan: plan)
            let output = problem.row(result.output, b, length: problem.rowElements)
            let lse = problem.row(result.lse, b, length: problem.rowPositions)
            let attended = reference.lse.map { $0 != -.infinity }
            #expect(attended.contains(false) && attended.contains(true))
            let error = AttentionAccuracy.relativeError(output, reference: reference.output, rowLength: headDim, rowMask: attended)
            #expect(error < 1e-2, "\(choice) D\(headDim) row \(b): relative error \(error)")
            let lseError = AttentionAccuracy.maxAbsoluteDifference(lse.map(Double.init), reference: reference.lse, rowMask: attended)
            #expect(lseError < 1e-3, "\(choice) D\(headDim) row \(b): lse error \(lseError)")
            // Holes and padding text: exactly 0 and −∞.
            var badRows = 0
            for position in 0..<problem.rowPositions where !attended[position] {
                let values = output[(position * headDim)..<((position + 1) * headDim)]
                if lse[position] != -.infinity || values.contains(where: { $0.floatValue != 0 || $0.floatValue.sign == .minus }) {
                    badRows += 1
                }
            }
            #expect(badRows == 0, "\(choice) D\(headDim) row \(b): \(badRows) empty rows not written as 0 / −∞")
        }

        // nil means the plan's valid length (256) for every row: row 1 as before, bit for bit.
        let plain = try forward(choice, problem, q: dq, k: dk, v: dv, textValid: nil)
        #expect(problem.row(plain.output, 1, length: problem.rowElements).map(\.bitPattern)
            == problem.row(result.output, 1, length: problem.rowElements).map(\.bitPattern))
        #expect(problem.row(plain.lse, 1, length: problem.rowPositions) == problem.row(result.lse, 1, length: problem.rowPositions))

        // Out-of-range lengths are clamped: −5 acts as 0 and 1000 as 256.
        let clamped = try forward(choice, problem, q: dq, k: dk, v: dv, textValid: [-5, 1000])
        #expect(problem.row(clamped.output, 1, length: problem.rowElements).map(\.bitPattern)
            == problem.row(result.output, 1, length: problem.rowElements).map(\.bitPattern))
        let noText = try TextRowsProblem.plan(textValid: 0)
        let reference = try ReferenceAttention.forward(
            q: problem.row(q, 0, length: problem.rowElements), k: problem.row(k, 0, length: problem.rowElements),
            v: problem.row(v, 0, length: problem.rowElements), batch: 1, headDim: headDim, plan: noText)
        let attended = reference.lse.map { $0 != -.infinity }
        let error = AttentionAccuracy.relativeError(
            problem.row(clamped.output, 0, length: problem.rowElements), reference: reference.output, rowLength: headDim,
            rowMask: attended)
        #expect(error < 1e-2, "\(choice) D\(headDim) length −5 as 0: relative error \(error)")
        #expect(zip(problem.row(clamped.lse, 0, length: problem.rowPositions), attended).allSatisfy { $1 || $0 == -.infinity })
    }

    @Test(arguments: [BackwardKernelChoice.portable, .hopper], [64, 128])
    func backwardRowsMatchTheReferenceOfTheirOwnLength(choice: BackwardKernelChoice, headDim: Int) throws {
        guard choice != .hopper || context.computeCapability.major == 9 else { return }  // sm_90 only
        let problem = try TextRowsProblem(headDim: headDim)
        let count = problem.batch * problem.rowElements
        let (q, k, v) = (randomBFloat16(count, seed: 4), randomBFloat16(count, seed: 5), randomBFloat16(count, seed: 6))
        let dout = randomBFloat16(count, seed: 7)
        let (dq, dk, dv) = (try upload(q), try upload(k), try upload(v))
        let lengths = try upload(TextRowsProblem.textValid.map(Int32.init))
        let forward = try forward(.portable, problem, q: dq, k: dk, v: dv, textValid: TextRowsProblem.textValid.map(Int32.init))
        let kernel = try choice.make(
            context: context, plan: problem.plan, headDim: headDim, dtype: .bfloat16, cache: KernelCache())
        let tensorBytes = problem.batch * problem.plan.heads * problem.plan.layout.sequenceLength * headDim * 2
        let gradients = try (0..<3).map { _ in
            try DeviceBuffer(context: context, byteCount: tensorBytes)
        }
        for buffer in gradients { try buffer.fill(byte: 0xFF) }   // NaN in bf16: an unwritten element shows
        let workspace = try DeviceBuffer(context: context, byteCount: kernel.workspaceByteCount(batch: problem.batch))
        try workspace.fill(byte: 0xFF)
        try kernel.launch(
            q: dq, k: dk, v: dv, output: upload(forward.output), lse: upload(forward.lse), outputGradient: upload(dout),
            dq: gradients[0], dk: gradients[1], dv: gradients[2], batch: problem.batch,
            scale: 1 / Float(headDim).squareRoot(), textValid: lengths, workspace: workspace, stream: nil)
        try context.synchronize()
        let results = try gradients.map { try download($0, count: count) }
        for b in 0..<problem.batch {
            let plan = try TextRowsProblem.plan(textValid: TextRowsProblem.textValid[b])
            let reference = try ReferenceAttention.backward(
                q: problem.row(q, b, length: problem.rowElements), k: problem.row(k, b, length: problem.rowElements),
                v: problem.row(v, b, length: problem.rowElements),
                output: problem.row(forward.output, b, length: problem.rowElements),
                lse: problem.row(forward.lse, b, length: problem.rowPositions),
                outputGradient: problem.row(dout, b, length: problem.rowElements), batch: 1, headDim: headDim, plan: plan)
            // A position attends nothing exactly when nothing attends it (holes, padding text).
            let empty = problem.row(forward.lse, b, length: problem.rowPositions).map { $0 == -.infinity }
            for (name, result, expected) in [("dq", results[0], reference.dq), ("dk", results[1], reference.dk), ("dv", results[2], reference.dv)] {
                let rows = problem.row(result, b, length: problem.rowElements)
                let error = AttentionAccuracy.relativeError(rows, reference: expected)
                #expect(error < 1e-2, "\(choice) D\(headDim) row \(b) \(name): relative error \(error)")
                var nonZero = 0
                for position in 0..<problem.rowPositions where empty[position] {
                    nonZero += rows[(position * headDim)..<((position + 1) * headDim)].filter { $0.bitPattern != 0 }.count
                }
                #expect(nonZero == 0, "\(choice) D\(headDim) row \(b) \(name): \(nonZero) values of empty rows are not +0")
            }
        }
    }
}
