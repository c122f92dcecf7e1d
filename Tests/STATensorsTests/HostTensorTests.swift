import Testing
@testable import STATensors

@Suite struct HostTensorTests {
    @Test func validatesShapeAndCounts() throws {
        #expect(throws: TensorError.elementCountMismatch(shape: [2, 3], expected: 6, actual: 5)) {
            try HostTensor(shape: [2, 3], values: [Float](repeating: 1, count: 5))
        }
        #expect(throws: TensorError.invalidShape([2, -1])) {
            try HostTensor(shape: [2, -1], values: [Float]())
        }
        #expect(throws: TensorError.byteCountMismatch(shape: [3], dtype: .float32, expected: 12, actual: 11)) {
            try HostTensor(shape: [3], dtype: .float32, bytes: [UInt8](repeating: 0, count: 11))
        }
        #expect(throws: TensorError.invalidShape([1 << 40, 1 << 40])) {
            try HostTensor(zeros: [1 << 40, 1 << 40], dtype: .float32)
        }
        let scalar = try HostTensor(shape: [], values: [Float(2.5)])
        #expect(scalar.elementCount == 1)
        #expect(try scalar.floats() == [2.5])
        let empty = try HostTensor(shape: [4, 0], values: [Double]())
        #expect(empty.bytes.isEmpty)
        #expect(try empty.reshaped([0]).shape == [0])
        #expect(throws: TensorError.elementCountMismatch(shape: [5], expected: 5, actual: 6)) {
            try HostTensor(shape: [2, 3], values: [Float](repeating: 1, count: 6)).reshaped([5])
        }
    }

    @Test func storesLittleEndianBytes() throws {
        let tensor = try HostTensor(shape: [2], values: [Float(1), -2])
        #expect(tensor.bytes == [0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])
        let integers = try HostTensor(shape: [1], values: [Int32(0x0102_0304)])
        #expect(integers.bytes == [4, 3, 2, 1])
        let bf = try HostTensor(shape: [1], values: [BFloat16(1)])
        #expect(bf.bytes == [0x80, 0x3F])
    }

    @Test func valuesRoundTripInTheirOwnDtype() throws {
        let floats: [Float] = [0, -0.0, 1.5, -3.25, .infinity, 65504, 1e-3]
        let f32 = try HostTensor(shape: [7], values: floats)
        #expect(try f32.values(as: Float.self) == floats)
        let halves = floats.map { Float16($0) }
        #expect(try HostTensor(shape: [7], values: halves).values(as: Float16.self) == halves)
        let brains = floats.map { BFloat16($0) }
        #expect(try HostTensor(shape: [7], values: brains).values(as: BFloat16.self) == brains)
        let doubles: [Double] = [1 / 3, -2e300, .leastNonzeroMagnitude]
        #expect(try HostTensor(shape: [3], values: doubles).doubles() == doubles)
        let longs: [Int64] = [.min, -1, 0, .max]
        #expect(try HostTensor(shape: [4], values: longs).values(as: Int64.self) == longs)
        let bools = [true, false, true]
        #expect(try HostTensor(shape: [3], values: bools).values(as: Bool.self) == bools)
    }

    @Test func floatsComeFromEveryDtype() throws {
        for (dtype, tensor) in try sampleTensors() {
            let floats = try tensor.floats()
            let doubles = try tensor.doubles()
            #expect(floats.count == 24)
            #expect(zip(floats, doubles).allSatisfy { $0 == Float($1) }, "dtype \(dtype)")
        }
        let small = try HostTensor(shape: [3], values: [Int8(-128), 0, 127])
        #expect(try small.floats() == [-128, 0, 127])
    }

    @Test func conversionsRoundOnceToNearestEven() throws {
        // 1 + 2^-8 + 2^-40 must round up to bf16 1 + 2^-7 (through Float it would round down).
        let f64 = try HostTensor(shape: [2], values: [1 + 0x1p-8 + 0x1p-40, 1 + 0x1p-8])
        let bf = try f64.converted(to: .bfloat16)
        #expect(try bf.values(as: BFloat16.self).map(\.bitPattern) == [0x3F81, 0x3F80])
        #expect(try f64.values(as: BFloat16.self).map(\.bitPattern) == [0x3F81, 0x3F80])
        // f32 -> f16 -> f32 matches Swift's own Float16 rounding.
        let f32 = try HostTensor(shape: [3], values: [Float(1.0009765), 70000, -0.1])
        let f16 = try f32.converted(to: .float16)
        #expect(try f16.values(as: Float16.self) == [Float16(Float(1.0009765)), Float16(Float(70000)), Float16(Float(-0.1))])
        #expect(try f16.converted(to: .float32).floats()[1] == .infinity)
    }

    @Test func integerConversionsAreExactOrThrow() throws {
        let floats = try HostTensor(shape: [3], values: [Float(3), -7, 200])
        #expect(try floats.converted(to: .int16).values(as: Int16.self) == [3, -7, 200])
        #expect(throws: TensorError.notRepresentable(index: 2, value: 200, dtype: .int8)) {
            try floats.converted(to: .int8)
        }
        #expect(throws: TensorError.notRepresentable(index: 0, value: 0.5, dtype: .int32)) {
            try HostTensor(shape: [1], values: [Float(0.5)]).values(as: Int32.self)
        }
        let nan = try HostTensor(shape: [1], values: [Float.nan])
        #expect(throws: TensorError.self) { try nan.converted(to: .uint8) }
        #expect(try nan.converted(to: .bool).values(as: Bool.self) == [true])
        let bools = try HostTensor(shape: [2], values: [true, false])
        #expect(try bools.converted(to: .float32).floats() == [1, 0])
        #expect(try HostTensor(shape: [2], values: [Int64(1) << 40, -5]).converted(to: .float64).doubles()
            == [0x1p40, -5])
    }

    @Test func conversionsBetweenAllDtypesKeepSmallIntegers() throws {
        let values: [Double] = [0, 1, 2, 100, 127]
        let source = try HostTensor(shape: [5], values: values)
        for dtype in DType.allCases where dtype != .bool {
            let converted = try source.converted(to: dtype)
            #expect(converted.dtype == dtype)
            #expect(converted.bytes.count == 5 * dtype.byteCount)
            #expect(try converted.doubles() == values, "dtype \(dtype)")
            for back in DType.allCases where back != .bool {
                #expect(try converted.converted(to: back).doubles() == values, "\(dtype) -> \(back)")
            }
        }
    }
}
