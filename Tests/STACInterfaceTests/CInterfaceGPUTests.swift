import STACPUKernels
import STAGeometry
import STATensors
import Testing

@testable import CUDADriver
@testable import STACInterface
import SlidingTileAttention

/// The primary context of GPU 0 and NVRTC, or nil on machines without them (then these tests are skipped).
let interfaceGPU: CUDAContext? = {
    guard (try? NVRTCCompiler.load()) != nil else { return nil }
    return try? CUDAEngine.shared.context(device: 0)
}()

@Suite(.enabled(if: interfaceGPU != nil, "needs a CUDA GPU and NVRTC"), .serialized)
struct CInterfaceGPUTests {
    let context = interfaceGPU!

    @Test("a borrowed buffer and stream are not freed or destroyed by their wrappers")
    func borrowing() throws {
        let owned = try DeviceBuffer(context: context, copying: [Float](repeating: 3, count: 256))
        do {
            let borrowed = try DeviceBuffer(borrowing: owned.address, byteCount: owned.byteCount, context: context)
            #expect(!borrowed.ownsMemory && borrowed.address == owned.address)
        }
        #expect(try owned.download(as: Float.self, count: 256).allSatisfy { $0 == 3 })
        let stream = try CUDAStream(context: context)
        do {
            let borrowed = try CUDAStream(borrowing: UInt64(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(stream.handle)))), context: context)
            #expect(!borrowed.ownsHandle)
        }
        try stream.synchronize()  // still a valid stream
        #expect(throws: CUDAError.self) { try CUDAStream(borrowing: 0, context: context) }
        #expect(throws: CUDAError.self) { try DeviceBuffer(borrowing: 0, byteCount: 16, context: context) }
    }

    @Test(
        "sta_forward_cuda on caller-owned memory matches the CPU kernel",
        arguments: ["auto", "portable"], [UInt64(0), 1])
    func forward(kernel: String, streamKind: UInt64) throws {
        let layout = try STALayout(canvas: [6, 16, 16], tile: [2, 8, 8], textCount: 64, textValid: 50)
        let windows = [Window(tiles: [1, 1, 1]), Window(tiles: [3, 1, 1])]
        let plan = try AttentionPlan(layout: layout, headWindows: windows)
        let c = try CPlan(
            canvas: [6, 16, 16], tile: [2, 8, 8], text: 64, textValid: 50, windows: [[1, 1, 1], [3, 1, 1]])
        let batch = 2, headDim = 64
        let raster = layout.videoTokenCount + layout.text.count
        let inputs = try (0..<3).map { index in
            try layout.tile(
                randomFloats(batch * 2 * raster * headDim, seed: 40 + UInt64(index)), outer: batch * 2,
                inner: headDim, fill: 0
            ).map { BFloat16($0) }
        }
        let rows = batch * 2 * layout.sequenceLength
        let q = try DeviceBuffer(context: context, copying: inputs[0].map(\.bitPattern))
        let k = try DeviceBuffer(context: context, copying: inputs[1].map(\.bitPattern))
        let v = try DeviceBuffer(context: context, copying: inputs[2].map(\.bitPattern))
        let out = try DeviceBuffer(context: context, byteCount: rows * headDim * 2)
        let lse = try DeviceBuffer(context: context, byteCount: rows * 4)
        try out.fill(byte: 0xFF)
        try lse.fill(byte: 0xFF)
        let stream = streamKind == 0 ? nil : try CUDAStream(context: context)
        let streamHandle = stream.map { UInt64(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer($0.handle)))) } ?? 0
        let message = MessageBuffer()
        let status = sta_forward_cuda(
            c.pointer, 2, Int64(batch), Int64(headDim), q.address, k.address, v.address, out.address, lse.address, 0,
            0, streamHandle, 0, kernel, message.storage, message.length)
        #expect(status == 0, "\(message.text)")
        if let stream { try stream.synchronize() }
        try context.synchronize()
        let gpuOut = try out.download(as: UInt16.self, count: rows * headDim).map { BFloat16(bitPattern: $0) }
        let gpuLSE = try lse.download(as: Float.self, count: rows)

        let cpu = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: headDim, q: inputs[0].map(\.floatValue), k: inputs[1].map(\.floatValue),
            v: inputs[2].map(\.floatValue))
        var difference = 0.0, norm = 0.0, lseError = 0.0
        for row in 0..<rows {
            if cpu.lse[row] == -.infinity {
                #expect(gpuLSE[row] == -.infinity)
                continue
            }
            lseError = max(lseError, Double(abs(gpuLSE[row] - cpu.lse[row])))
            for d in 0..<headDim {
                let g = Double(gpuOut[row * headDim + d].floatValue), r = Double(cpu.output[row * headDim + d])
                difference += (g - r) * (g - r)
                norm += r * r
            }
        }
        #expect((difference / norm).squareRoot() < 1e-2)
        #expect(lseError < 1e-3)
    }
}

@Suite(.enabled(if: interfaceGPU != nil, "needs a CUDA GPU and NVRTC"), .serialized)
struct CInterfaceGPUBackwardTests {
    let context = interfaceGPU!

    /// The relative L2 error of `values` against `reference`.
    func relativeError(_ values: [Float], _ reference: [Float]) -> Double {
        var difference = 0.0, norm = 0.0
        for (g, r) in zip(values, reference) {
            difference += Double(g - r) * Double(g - r)
            norm += Double(r) * Double(r)
        }
        return (difference / norm).squareRoot()
    }

    @Test(
        "sta_backward_cuda writes bf16 gradients that match the CPU kernel's, with per-row text lengths",
        arguments: [false, true])
    func backward(perRowText: Bool) throws {
        let layout = try STALayout(canvas: [6, 16, 16], tile: [2, 8, 8], textCount: 64, textValid: 50)
        let windows = [Window(tiles: [1, 1, 1]), Window(tiles: [3, 1, 1])]
        let c = try CPlan(
            canvas: [6, 16, 16], tile: [2, 8, 8], text: 64, textValid: 50, windows: [[1, 1, 1], [3, 1, 1]])
        let batch = 2, headDim = 64
        let lengths: [Int32] = perRowText ? [17, 64] : [50, 50]
        let rows = batch * 2 * layout.sequenceLength, elements = rows * headDim
        let raster = layout.videoTokenCount + layout.text.count
        let host = try (0..<4).map { index in
            try layout.tile(
                randomFloats(batch * 2 * raster * headDim, seed: 70 + UInt64(index)), outer: batch * 2,
                inner: headDim, fill: 0
            ).map { BFloat16($0) }
        }
        let device = try host.map { try DeviceBuffer(context: context, copying: $0.map(\.bitPattern)) }
        let out = try DeviceBuffer(context: context, byteCount: elements * 2)
        let lse = try DeviceBuffer(context: context, byteCount: rows * 4)
        let gradients = try (0..<3).map { _ in try DeviceBuffer(context: context, byteCount: elements * 2) }
        for buffer in gradients { try buffer.fill(byte: 0xFF) }
        let textValid = try DeviceBuffer(context: context, copying: lengths)
        let message = MessageBuffer()
        var status = sta_forward_cuda(
            c.pointer, 2, Int64(batch), Int64(headDim), device[0].address, device[1].address, device[2].address,
            out.address, lse.address, 0, perRowText ? textValid.address : 0, 0, 0, "portable", message.storage,
            message.length)
        #expect(status == 0, "\(message.text)")
        var bytes: Int64 = -1
        status = sta_backward_cuda_workspace_size(c.pointer, 2, Int64(batch), Int64(headDim), 0, nil, &bytes, message.storage, message.length)
        #expect(status == 0 && bytes >= 0, "\(message.text)")
        let workspace = try DeviceBuffer(context: context, byteCount: Int(bytes))
        status = sta_backward_cuda(
            c.pointer, 2, Int64(batch), Int64(headDim), device[0].address, device[1].address, device[2].address,
            out.address, lse.address, device[3].address, gradients[0].address, gradients[1].address,
            gradients[2].address, 0, perRowText ? textValid.address : 0, workspace.address, bytes, 0, 0, nil,
            message.storage, message.length)
        #expect(status == 0, "\(message.text)")
        try context.synchronize()
        let output = try out.download(as: UInt16.self, count: elements).map { BFloat16(bitPattern: $0).floatValue }
        let logSumExp = try lse.download(as: Float.self, count: rows)
        let gpu = try gradients.map { try $0.download(as: UInt16.self, count: elements).map { BFloat16(bitPattern: $0).floatValue } }

        // Row b against the CPU kernel on the plan whose valid text length is the row's.
        let rowElements = elements / batch, rowRows = rows / batch
        for b in 0..<batch {
            let rowPlan = try AttentionPlan(
                layout: STALayout(canvas: [6, 16, 16], tile: [2, 8, 8], textCount: 64, textValid: Int(lengths[b])),
                headWindows: windows)
            func row(_ values: [Float]) -> [Float] { Array(values[(b * rowElements)..<((b + 1) * rowElements)]) }
            let wide = host.map { row($0.map(\.floatValue)) }
            let cpu = try CPUAttention.backward(
                plan: rowPlan, batch: 1, headDim: headDim, q: wide[0], k: wide[1], v: wide[2], output: row(output),
                lse: Array(logSumExp[(b * rowRows)..<((b + 1) * rowRows)]), outputGradient: wide[3])
            for (name, got, want) in [("dq", gpu[0], cpu.dq), ("dk", gpu[1], cpu.dk), ("dv", gpu[2], cpu.dv)] {
                let error = relativeError(row(got), want)
                #expect(error < 1e-2, "row \(b) \(name): \(error)")
            }
        }
    }
}
