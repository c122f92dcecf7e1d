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
