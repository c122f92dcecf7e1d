import Testing

@testable import CUDADriver

@Suite struct TensorMapTests {
    private func validate(
        _ type: TensorMap.ElementType = .bfloat16, address: UInt64 = 0x1000, dimensions: [Int] = [128, 4096, 24],
        strides: [Int] = [256, 256 * 4096], box: [Int] = [64, 128, 1], swizzle: TensorMap.Swizzle = .bytes128
    ) throws(CUDAError) {
        try TensorMap.validateTiled(
            elementType: type, globalAddress: address, dimensions: dimensions, strideBytes: strides,
            boxDimensions: box, swizzle: swizzle)
    }

    @Test func enumValuesMatchCudaH() {
        #expect(TensorMap.ElementType.float16.rawValue == 6)
        #expect(TensorMap.ElementType.bfloat16.rawValue == 9)
        #expect(TensorMap.Swizzle.bytes128.rawValue == 3)
        #expect(TensorMap.L2Promotion.bytes256.rawValue == 3)
    }

    @Test func aTypicalAttentionTileIsAccepted() throws {
        try validate()
        try validate(.float16, dimensions: [128, 4096], strides: [256], box: [64, 64])
        try validate(dimensions: [64, 8, 8, 8], strides: [128, 1024, 8192], box: [64, 2, 2, 2])
    }

    @Test func brokenRulesAreRejectedWithTheReason() {
        func reason(_ body: () throws(CUDAError) -> Void) -> String {
            do throws(CUDAError) {
                try body()
                return "accepted"
            } catch { return error.description }
        }
        #expect(reason { () throws(CUDAError) in try validate(address: 0x1008) }.contains("16-byte aligned"))
        #expect(reason { () throws(CUDAError) in try validate(strides: [250, 256 * 4096]) }.contains("multiple of 16"))
        #expect(reason { () throws(CUDAError) in try validate(box: [64, 512, 1]) }.contains("1...256"))
        #expect(reason { () throws(CUDAError) in try validate(box: [128, 64, 1]) }.contains("swizzle"))
        #expect(
            reason { () throws(CUDAError) in try validate(box: [4, 64, 1], swizzle: .none) }.contains("multiple of 16"))
        #expect(reason { () throws(CUDAError) in try validate(strides: [256]) }.contains("strides"))
        #expect(reason { () throws(CUDAError) in try validate(dimensions: [1, 2, 3, 4, 5, 6]) }.contains("rank"))
        #expect(reason { () throws(CUDAError) in try validate(dimensions: [128, 0, 24]) }.contains("dimension 1"))
    }
}
