import Foundation
@testable import STATensors

/// A fresh temporary directory for one test.
func makeTemporaryDirectory() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("STATensorsTests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One sample tensor of every dtype, with values that exercise signs, fractions and extremes.
func sampleTensors(shape: [Int] = [2, 3, 4]) throws -> [DType: HostTensor] {
    var rng = SplitMix64(seed: 7)
    let count = shape.reduce(1, *)
    let floats = (0..<count).map { _ in Float.random(in: -100...100, using: &rng) }
    var result = [DType: HostTensor]()
    result[.float32] = try HostTensor(shape: shape, values: floats)
    result[.float16] = try HostTensor(shape: shape, values: floats.map { Float16($0) })
    result[.bfloat16] = try HostTensor(shape: shape, values: floats.map { BFloat16($0) })
    result[.float64] = try HostTensor(shape: shape, values: floats.map { Double($0) / 3 })
    result[.int8] = try HostTensor(shape: shape, values: (0..<count).map { Int8(truncatingIfNeeded: $0 * 37 - 128) })
    result[.int16] = try HostTensor(shape: shape, values: (0..<count).map { Int16(truncatingIfNeeded: $0 * 4099 - 30000) })
    result[.int32] = try HostTensor(shape: shape, values: (0..<count).map { Int32(truncatingIfNeeded: $0 * 98_765_431) })
    result[.int64] = try HostTensor(shape: shape, values: (0..<count).map { Int64($0) * 0x1234_5678_9AB - (1 << 62) })
    result[.uint8] = try HostTensor(shape: shape, values: (0..<count).map { UInt8(truncatingIfNeeded: $0 * 11) })
    result[.bool] = try HostTensor(shape: shape, values: (0..<count).map { $0 % 3 == 0 })
    return result
}

/// Little-endian bytes of `value`.
func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

/// The problem inside a `.numpy` error, or nil.
func numpyProblem(_ error: any Error) -> NumpyProblem? {
    if case let .numpy(_, problem)? = error as? TensorError { return problem }
    return nil
}

/// The problem inside a `.safetensors` error, or nil.
func safetensorsProblem(_ error: any Error) -> SafetensorsProblem? {
    if case let .safetensors(_, problem)? = error as? TensorError { return problem }
    return nil
}
