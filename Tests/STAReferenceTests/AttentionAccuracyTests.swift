import STATensors
import Testing
@testable import STAReference

@Suite struct AttentionAccuracyTests {
    @Test func relativeErrorIsTheNormRatio() {
        #expect(abs(AttentionAccuracy.relativeError([3, 4.5], reference: [3, 4]) - 0.1) < 1e-15)
        #expect(AttentionAccuracy.relativeError([1, 2], reference: [1, 2]) == 0)
        #expect(AttentionAccuracy.relativeError([Float(3), 4.5], reference: [3, 4]) == AttentionAccuracy.relativeError([3, 4.5], reference: [3, 4]))
        #expect(AttentionAccuracy.relativeError([0, 0], reference: [0, 0]) == 0)
        #expect(AttentionAccuracy.relativeError([0, 1], reference: [0, 0]) == .infinity)
    }

    @Test func failuresNeverPass() throws {
        #expect(AttentionAccuracy.relativeError([1, .nan], reference: [1, 2]).isNaN)
        #expect(AttentionAccuracy.relativeError([Float.nan], reference: [1]).isNaN)
        #expect(AttentionAccuracy.relativeError([1, .infinity], reference: [1, 2]) == .infinity)
        #expect(AttentionAccuracy.relativeError([1, 2, 3], reference: [1, 2]) == .infinity)
        #expect(AttentionAccuracy.relativeError([1, 2, 3], reference: [1, 2, 3], rowLength: 2) == .infinity)
        #expect(!(AttentionAccuracy.relativeError([Float.nan], reference: [1]) < 1e-2))
        let nanTensor = try HostTensor(shape: [2], values: [BFloat16(1), BFloat16(Float.nan)])
        #expect(AttentionAccuracy.relativeError(nanTensor, reference: [1, 1]).isNaN)
        #expect(AttentionAccuracy.maxAbsoluteDifference([0, .nan], reference: [0, 1]).isNaN)
        #expect(AttentionAccuracy.maxAbsoluteDifference([0], reference: [0, 1]) == .infinity)
    }

    @Test func rowMasksRepeatOverBatchAndHeads() {
        // Two heads of three rows of length 2; the middle row of each head is a hole full of garbage.
        let reference: [Double] = [1, 1, 0, 0, 2, 2, 3, 3, 0, 0, 4, 4]
        var output = reference
        output[2] = .nan
        output[8] = 1e30
        output[11] = 4.4
        let mask = [true, false, true]
        let error = AttentionAccuracy.relativeError(output, reference: reference, rowLength: 2, rowMask: mask)
        #expect(abs(error - 0.4 / (1 + 1 + 4 + 4 + 9 + 9 + 16 + 16 as Double).squareRoot()) < 1e-15)
        #expect(AttentionAccuracy.relativeError(output, reference: reference, rowLength: 2).isNaN)
    }

    @Test func lseDifferenceSkipsRowsWithoutKeys() {
        let reference: [Double] = [1, -.infinity, 2]
        #expect(AttentionAccuracy.maxAbsoluteDifference([1.5, 7, 2.25], reference: reference) == 0.5)
        #expect(AttentionAccuracy.maxAbsoluteDifference([Float(1), .nan, 2], reference: reference) == 0)
        #expect(AttentionAccuracy.maxAbsoluteDifference([1, 0, 9], reference: reference, rowMask: [true, true, false]) == 0)
    }
}
