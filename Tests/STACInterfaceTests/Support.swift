@testable import STACInterface

/// A message buffer for one call, read back as a String.
final class MessageBuffer {
    let storage: UnsafeMutablePointer<CChar>
    let length: Int

    init(length: Int = 1024) {
        self.length = length
        storage = .allocate(capacity: length)
        storage.initialize(repeating: 0x55, count: length)  // not NUL: a missing terminator shows
    }

    deinit { storage.deallocate() }

    var text: String { String(cString: storage) }
}

/// A plan created through the C interface; destroyed with the object.
final class CPlan {
    let pointer: OpaquePointer

    init(
        canvas: [Int64], tile: [Int64], text: Int64 = 0, textValid: Int64 = -1, windows: [[Int64]]
    ) throws {
        let message = MessageBuffer()
        let flat = windows.flatMap { $0 }
        guard let pointer = sta_plan_create(
            Int32(canvas.count), canvas, tile, text, textValid, Int64(windows.count), flat, message.storage,
            message.length)
        else { throw TestFailure(message.text) }
        self.pointer = pointer
    }

    deinit { _ = sta_plan_destroy(pointer, nil, 0) }

    func shape() -> (heads: Int, video: Int, padded: Int, text: Int, valid: Int, raster: Int, sequence: Int) {
        var values = [Int64](repeating: -1, count: 7)
        let status = values.withUnsafeMutableBufferPointer { v in
            sta_plan_shape(pointer, v.baseAddress! + 0, v.baseAddress! + 1, v.baseAddress! + 2, v.baseAddress! + 3,
                           v.baseAddress! + 4, v.baseAddress! + 5, v.baseAddress! + 6, nil, 0)
        }
        precondition(status == 0)
        let i = values.map { Int($0) }
        return (i[0], i[1], i[2], i[3], i[4], i[5], i[6])
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Deterministic values in about [-2, 2) (a 64-bit LCG), never all zero.
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int64(bitPattern: state >> 11) % 1_000_000) / 250_000 - 2
    }
}
