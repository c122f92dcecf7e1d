import STAGeometry
import Testing

@testable import STACInterface

@Suite("C interface: plans and permutations")
struct CInterfacePlanTests {
    @Test("a plan reports the sizes of its layout")
    func planSizes() throws {
        let plan = try CPlan(
            canvas: [5, 6, 7], tile: [2, 4, 4], text: 3, textValid: 2, windows: [[1, 3, 1], [3, 1, 3]])
        let layout = try STALayout(canvas: [5, 6, 7], tile: [2, 4, 4], textCount: 3, textValid: 2)
        let shape = plan.shape()
        #expect(shape.heads == 2)
        #expect(shape.video == layout.videoTokenCount)
        #expect(shape.padded == layout.paddedVideoTokenCount)
        #expect(shape.text == 3 && shape.valid == 2)
        #expect(shape.raster == layout.videoTokenCount + 3)
        #expect(shape.sequence == layout.sequenceLength)
        var length: Int64 = 0
        #expect(sta_plan_sequence_length(plan.pointer, &length, nil, 0) == 0)
        #expect(length == Int64(layout.sequenceLength))

        let reference = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [1, 3, 1]), Window(tiles: [3, 1, 3])])
        var sparsity = -1.0
        #expect(sta_plan_video_sparsity(plan.pointer, &sparsity, nil, 0) == 0)
        #expect(sparsity == reference.videoSparsity)
        var flops = -1.0
        #expect(sta_plan_effective_flops(plan.pointer, 2, 64, &flops, nil, 0) == 0)
        #expect(flops == reference.effectiveFLOPs(batch: 2, headDim: 64))
    }

    @Test("text_valid below 0 means every text token is real")
    func textValidDefault() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], text: 5, textValid: -1, windows: [[1, 1]])
        #expect(plan.shape().valid == 5)
    }

    @Test("sequence_index inverts the layout's raster map")
    func sequenceIndex() throws {
        let plan = try CPlan(canvas: [3, 5, 6], tile: [2, 2, 4], windows: [[1, 1, 1]])
        let layout = try STALayout(canvas: [3, 5, 6], tile: [2, 2, 4])
        var indices = [Int64](repeating: -1, count: layout.videoTokenCount)
        #expect(sta_plan_sequence_index(plan.pointer, &indices, Int64(indices.count), nil, 0) == 0)
        let map = layout.rasterIndexBySequenceIndex()
        for (raster, sequence) in indices.enumerated() {
            #expect(map[Int(sequence)] == Int32(raster))
        }
    }

    @Test(
        "tile matches STALayout.tile and untile inverts it, for several outer/inner splits",
        arguments: [(1, 1), (3, 8), (2, 5)])
    func tileRoundTrip(outer: Int, inner: Int) throws {
        let plan = try CPlan(canvas: [5, 6, 7], tile: [2, 4, 4], text: 3, windows: [[1, 1, 1]])
        let layout = try STALayout(canvas: [5, 6, 7], tile: [2, 4, 4], textCount: 3)
        let shape = plan.shape()
        let source = randomFloats(outer * shape.raster * inner, seed: UInt64(outer * 31 + inner))
        var tiled = [Float](repeating: .nan, count: outer * shape.sequence * inner)
        let message = MessageBuffer()
        #expect(
            sta_tile(plan.pointer, source, &tiled, Int64(outer), Int64(inner * 4), message.storage, message.length)
                == 0, "\(message.text)")
        let expected = try layout.tile(source, outer: outer, inner: inner, fill: 0)
        #expect(tiled == expected)  // holes are zero, not NaN
        var back = [Float](repeating: .nan, count: source.count)
        #expect(sta_untile(plan.pointer, tiled, &back, Int64(outer), Int64(inner * 4), nil, 0) == 0)
        #expect(back == source)
    }

    @Test("a large permutation (several threads) equals the generic one")
    func largeTile() throws {
        let plan = try CPlan(canvas: [9, 20, 30], tile: [4, 8, 8], text: 7, windows: [[1, 1, 1]])
        let layout = try STALayout(canvas: [9, 20, 30], tile: [4, 8, 8], textCount: 7)
        let outer = 4, inner = 512  // 4 · 5407 · 2 KiB ≈ 44 MB: above the parallel threshold
        let source = randomFloats(outer * plan.shape().raster * inner, seed: 9)
        var tiled = [Float](repeating: .nan, count: outer * layout.sequenceLength * inner)
        #expect(sta_tile(plan.pointer, source, &tiled, Int64(outer), Int64(inner * 4), nil, 0) == 0)
        #expect(tiled == (try layout.tile(source, outer: outer, inner: inner, fill: 0)))
        var back = [Float](repeating: .nan, count: source.count)
        #expect(sta_untile(plan.pointer, tiled, &back, Int64(outer), Int64(inner * 4), nil, 0) == 0)
        #expect(back == source)
    }

    @Test("a destroyed handle is rejected afterwards, never reused")
    func destroy() throws {
        let message = MessageBuffer()
        let windows: [Int64] = [1]
        let pointer = try #require(sta_plan_create(1, [16], [4], 0, -1, 1, windows, message.storage, message.length))
        var length: Int64 = 0
        #expect(sta_plan_sequence_length(pointer, &length, nil, 0) == 0)
        #expect(sta_plan_destroy(pointer, nil, 0) == 0)
        #expect(sta_plan_sequence_length(pointer, &length, message.storage, message.length) == 3)
        #expect(message.text.contains("not a live plan"))
        #expect(sta_plan_destroy(pointer, message.storage, message.length) == 3)
        let next = try #require(sta_plan_create(1, [16], [4], 0, -1, 1, windows, nil, 0))
        #expect(next != pointer)
        #expect(sta_plan_destroy(next, nil, 0) == 0)
        #expect(sta_plan_destroy(nil, nil, 0) == 0)
    }
}
