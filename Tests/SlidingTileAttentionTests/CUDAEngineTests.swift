import Testing

@testable import SlidingTileAttention

@Suite struct CUDAEngineKeyTests {
    func plan(textValid: Int?, windows: [Int] = [1, 3, 3]) throws -> AttentionPlan {
        let layout = try STALayout(canvas: [12, 16, 24], tile: [6, 8, 8], textCount: 64, textValid: textValid)
        return try AttentionPlan(layout: layout, window: Window(tiles: windows), heads: 2)
    }

    func key(_ plan: AttentionPlan, headDim: Int = 128) -> CUDAEngine.KernelKey {
        CUDAEngine.KernelKey(device: 0, plan: plan, headDim: headDim, dtype: .bfloat16, kernel: .portable, direction: .forward)
    }

    /// The kernels read valid text lengths at run time: plans that differ only in the default length share
    /// one compiled kernel.
    @Test func theDefaultValidTextLengthIsNotPartOfAKernelsIdentity() throws {
        #expect(key(try plan(textValid: 10)) == key(try plan(textValid: nil)))
        #expect(key(try plan(textValid: 0)) == key(try plan(textValid: 64)))
        #expect(key(try plan(textValid: 10)).layout.text.valid == 64)
    }

    @Test func everythingElseIsPartOfIt() throws {
        #expect(key(try plan(textValid: nil)) != key(try plan(textValid: nil, windows: [1, 1, 1])))
        #expect(key(try plan(textValid: nil)) != key(try plan(textValid: nil), headDim: 64))
        let layout = try STALayout(canvas: [12, 16, 24], tile: [6, 8, 8], textCount: 32)
        #expect(key(try plan(textValid: nil)) != key(try AttentionPlan(layout: layout, window: Window(tiles: [1, 3, 3]), heads: 2)))
    }
}
