import STACPUKernels
import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACInterface

@Suite("C interface: forward on the CPU")
struct CInterfaceForwardTests {
    static let canvas = [5, 6, 7], tile = [2, 4, 4]
    static let windows: [[Int]] = [[1, 3, 1], [3, 1, 3], [9, 9, 9]]

    func plans() throws -> (CPlan, AttentionPlan) {
        let c = try CPlan(
            canvas: Self.canvas.map(Int64.init), tile: Self.tile.map(Int64.init), text: 3, textValid: 2,
            windows: Self.windows.map { $0.map(Int64.init) })
        let layout = try STALayout(canvas: Self.canvas, tile: Self.tile, textCount: 3, textValid: 2)
        return (c, try AttentionPlan(layout: layout, headWindows: Self.windows.map { Window(tiles: $0) }))
    }

    /// Inputs in tile order with zero holes (what `sta_tile` produces).
    func inputs(_ plan: AttentionPlan, batch: Int, headDim: Int, seed: UInt64) throws -> [[Float]] {
        let layout = plan.layout
        let raster = layout.videoTokenCount + layout.text.count
        return try (0..<3).map { index in
            try layout.tile(
                randomFloats(batch * plan.heads * raster * headDim, seed: seed + UInt64(index)),
                outer: batch * plan.heads, inner: headDim, fill: 0)
        }
    }

    @Test("f32 forward equals CPUAttention and a float64 reference")
    func float32() throws {
        let (c, plan) = try plans()
        let batch = 2, headDim = 16
        let qkv = try inputs(plan, batch: batch, headDim: headDim, seed: 1)
        let rows = batch * plan.heads * plan.layout.sequenceLength
        var out = [Float](repeating: .nan, count: rows * headDim)
        var lse = [Float](repeating: .nan, count: rows)
        let message = MessageBuffer()
        let status = sta_forward_cpu(
            c.pointer, 0, Int64(batch), Int64(headDim), qkv[0], qkv[1], qkv[2], &out, &lse, 0, nil, 2,
            message.storage, message.length)
        #expect(status == 0, "\(message.text)")
        #expect(message.text.isEmpty)

        let direct = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: headDim, q: qkv[0], k: qkv[1], v: qkv[2], threads: 2)
        #expect(out == direct.output)
        #expect(lse.elementsEqual(direct.lse) { $0 == $1 || ($0.isInfinite && $1.isInfinite) })

        let reference = try ReferenceAttention.forward(
            q: qkv[0], k: qkv[1], v: qkv[2], batch: batch, heads: plan.heads,
            sequenceLength: plan.layout.sequenceLength, headDim: headDim,
            allows: { plan.allows(head: $0, query: $1, key: $2) })
        let realRows = ReferenceAttention.realQueryMask(layout: plan.layout)
        var difference = 0.0, norm = 0.0, lseError = 0.0
        for row in 0..<rows where realRows[row % plan.layout.sequenceLength] {
            for d in 0..<headDim {
                let index = row * headDim + d
                difference += (Double(out[index]) - reference.output[index]) * (Double(out[index]) - reference.output[index])
                norm += reference.output[index] * reference.output[index]
            }
            lseError = max(lseError, abs(Double(lse[row]) - reference.lse[row]))
        }
        #expect(norm > 0)
        #expect((difference / norm).squareRoot() < 1e-5)
        #expect(lseError < 1e-4)
        // Rows that attend nothing: holes and the padding text row.
        for row in 0..<rows where !realRows[row % plan.layout.sequenceLength] {
            #expect(lse[row] == -.infinity)
            #expect(out[(row * headDim)..<((row + 1) * headDim)].allSatisfy { $0 == 0 })
        }
    }

    @Test("an explicit scale reaches the kernel")
    func explicitScale() throws {
        let (c, plan) = try plans()
        let headDim = 8
        let qkv = try inputs(plan, batch: 1, headDim: headDim, seed: 5)
        let rows = plan.heads * plan.layout.sequenceLength
        var out = [Float](repeating: .nan, count: rows * headDim), lse = [Float](repeating: .nan, count: rows)
        #expect(sta_forward_cpu(c.pointer, 0, 1, Int64(headDim), qkv[0], qkv[1], qkv[2], &out, &lse, 0.3, nil, 1, nil, 0) == 0)
        let direct = try CPUAttention.forward(
            plan: plan, batch: 1, headDim: headDim, q: qkv[0], k: qkv[1], v: qkv[2], scale: 0.3, threads: 1)
        #expect(out == direct.output)
    }

    @Test("f16 and bf16 forwards equal CPUAttention on the same storage type")
    func sixteenBit() throws {
        let (c, plan) = try plans()
        let batch = 1, headDim = 24
        let qkv = try inputs(plan, batch: batch, headDim: headDim, seed: 11)
        let rows = batch * plan.heads * plan.layout.sequenceLength

        let half = qkv.map { $0.map { Float16($0) } }
        var outHalf = [Float16](repeating: .nan, count: rows * headDim), lse = [Float](repeating: .nan, count: rows)
        #expect(sta_forward_cpu(c.pointer, 1, Int64(batch), Int64(headDim), half[0], half[1], half[2], &outHalf, &lse, 0, nil, 0, nil, 0) == 0)
        let directHalf = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: headDim, q: half[0], k: half[1], v: half[2])
        #expect(outHalf == directHalf.output)

        let brain = qkv.map { $0.map { BFloat16($0) } }
        var outBrain = [BFloat16](repeating: BFloat16(Float.nan), count: rows * headDim)
        #expect(sta_forward_cpu(c.pointer, 2, Int64(batch), Int64(headDim), brain[0], brain[1], brain[2], &outBrain, &lse, 0, nil, 0, nil, 0) == 0)
        let directBrain = try CPUAttention.forward(
            plan: plan, batch: batch, headDim: headDim, q: brain[0], k: brain[1], v: brain[2])
        #expect(outBrain.map(\.bitPattern) == directBrain.output.map(\.bitPattern))
    }
}
