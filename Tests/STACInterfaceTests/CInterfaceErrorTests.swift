import Testing

@testable import STACInterface

/// Every rejected call returns its non-zero status and says why; none of them crashes.
@Suite("C interface: bad input")
struct CInterfaceErrorTests {
    static let invalidArgument: Int32 = 1, geometry: Int32 = 2, invalidHandle: Int32 = 3

    /// Runs `call` with a fresh message buffer and checks its status and that the message mentions
    /// `fragment`.
    func expectFailure(
        _ status: Int32, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ call: (UnsafeMutablePointer<CChar>, Int) -> Int32
    ) {
        let message = MessageBuffer()
        let result = call(message.storage, message.length)
        #expect(result == status, "message: \(message.text)", sourceLocation: sourceLocation)
        #expect(message.text.contains(fragment), "message: \(message.text)", sourceLocation: sourceLocation)
    }

    /// `sta_plan_create` fails (returns nil) with a message containing `fragment`.
    func expectCreateFailure(
        _ fragment: String, rank: Int32 = 2, canvas: [Int64]? = [8, 8], tile: [Int64]? = [4, 4], text: Int64 = 0,
        valid: Int64 = -1, heads: Int64 = 1, windows: [Int64]? = [1, 1], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let message = MessageBuffer()
        let plan = sta_plan_create(rank, canvas, tile, text, valid, heads, windows, message.storage, message.length)
        #expect(plan == nil, sourceLocation: sourceLocation)
        #expect(message.text.contains(fragment), "message: \(message.text)", sourceLocation: sourceLocation)
        if let plan { _ = sta_plan_destroy(plan, nil, 0) }
    }

    @Test("plan creation rejects bad geometry with a reason")
    func planCreation() {
        expectCreateFailure("rank is 0", rank: 0)
        expectCreateFailure("rank is 4", rank: 4)
        expectCreateFailure("canvas is NULL", canvas: nil)
        expectCreateFailure("tile is NULL", tile: nil)
        expectCreateFailure("windows is NULL", windows: nil)
        expectCreateFailure("canvas axis 1 is 0", canvas: [8, 0])
        expectCreateFailure("tile axis 0 is -4", tile: [-4, 4])
        expectCreateFailure("tile axis 0 is 16 tokens but the canvas axis is only 8", tile: [16, 4])
        expectCreateFailure("text_count is -1", text: -1)
        expectCreateFailure("text_valid is 9", text: 8, valid: 9)
        expectCreateFailure("heads is 0", heads: 0)
        expectCreateFailure("window axis 0 is 2 tiles, even", canvas: [24, 8], windows: [2, 1])
        expectCreateFailure("window of head 1, axis 1 is 0", heads: 2, windows: [1, 1, 1, 0])
        expectCreateFailure("exceeds", rank: 3, canvas: [1 << 20, 1 << 20, 1 << 20], tile: [1, 1, 1], windows: [1, 1, 1])
        expectCreateFailure("exceeds", canvas: [Int64(Int32.max), Int64(Int32.max)], tile: [1, 1])
        expectCreateFailure("pairs", rank: 1, canvas: [1 << 26], tile: [1], windows: [1 << 26])
    }

    @Test("a NULL or unknown handle is rejected by every function")
    func handles() {
        let bogus = OpaquePointer(bitPattern: 0x1234_5670)
        for handle in [nil, bogus] {
            let fragment = handle == nil ? "NULL" : "not a live plan"
            var value: Int64 = 0, real = 0.0
            var bytes = [UInt8](repeating: 0, count: 64)
            var lse = [Float](repeating: 0, count: 4)
            expectFailure(Self.invalidHandle, fragment) { sta_plan_sequence_length(handle, &value, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) {
                sta_plan_shape(handle, &value, nil, nil, nil, nil, nil, nil, $0, $1)
            }
            expectFailure(Self.invalidHandle, fragment) { sta_plan_video_sparsity(handle, &real, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) { sta_plan_effective_flops(handle, 1, 1, &real, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) { sta_plan_sequence_index(handle, &value, 1, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) { sta_tile(handle, bytes, &bytes, 1, 1, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) { sta_untile(handle, bytes, &bytes, 1, 1, $0, $1) }
            expectFailure(Self.invalidHandle, fragment) {
                sta_forward_cpu(handle, 0, 1, 1, bytes, bytes, bytes, &bytes, &lse, 0, nil, 0, $0, $1)
            }
            expectFailure(Self.invalidHandle, fragment) {
                sta_forward_cuda(handle, 2, 1, 128, 256, 256, 256, 256, 256, 0, 0, 0, 0, nil, $0, $1)
            }
        }
        expectFailure(Self.invalidHandle, "not a live plan") {
            sta_plan_destroy(OpaquePointer(bitPattern: 0x1234_5670), $0, $1)
        }
    }

    @Test("plan queries reject NULL outputs and wrong counts")
    func queries() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])
        expectFailure(Self.invalidArgument, "sequence_length is NULL") { sta_plan_sequence_length(plan.pointer, nil, $0, $1) }
        expectFailure(Self.invalidArgument, "sparsity is NULL") { sta_plan_video_sparsity(plan.pointer, nil, $0, $1) }
        expectFailure(Self.invalidArgument, "flops is NULL") { sta_plan_effective_flops(plan.pointer, 1, 8, nil, $0, $1) }
        var real = 0.0
        expectFailure(Self.invalidArgument, "batch is 0") { sta_plan_effective_flops(plan.pointer, 0, 8, &real, $0, $1) }
        expectFailure(Self.invalidArgument, "indices is NULL") { sta_plan_sequence_index(plan.pointer, nil, 64, $0, $1) }
        var indices = [Int64](repeating: 0, count: 64)
        expectFailure(Self.invalidArgument, "count is 63") { sta_plan_sequence_index(plan.pointer, &indices, 63, $0, $1) }
    }

    @Test("tile and untile reject NULL, negative, overlapping and overflowing arguments")
    func permutations() throws {
        let plan = try CPlan(canvas: [6, 6], tile: [4, 4], windows: [[1, 1]])  // raster 36, S 64
        var buffer = [UInt8](repeating: 0, count: 1024)
        let source = [UInt8](repeating: 1, count: 1024)
        for function in [sta_tile, sta_untile] {
            expectFailure(Self.invalidArgument, "src is NULL") { function(plan.pointer, nil, &buffer, 1, 1, $0, $1) }
            expectFailure(Self.invalidArgument, "dst is NULL") { function(plan.pointer, source, nil, 1, 1, $0, $1) }
            expectFailure(Self.invalidArgument, "outer is -1") { function(plan.pointer, source, &buffer, -1, 1, $0, $1) }
            expectFailure(Self.invalidArgument, "inner_bytes is -2") { function(plan.pointer, source, &buffer, 1, -2, $0, $1) }
            expectFailure(Self.invalidArgument, "overflows") {
                function(plan.pointer, source, &buffer, Int64.max / 2, 1 << 40, $0, $1)
            }
            expectFailure(Self.invalidArgument, "overlap") { message, length in
                buffer.withUnsafeMutableBytes {
                    function(plan.pointer, UnsafeRawPointer($0.baseAddress! + 8), $0.baseAddress!, 1, 4, message, length)
                }
            }
        }
        // Empty tensors are fine and touch nothing.
        #expect(sta_tile(plan.pointer, source, &buffer, 0, 4, nil, 0) == 0)
        #expect(sta_untile(plan.pointer, source, &buffer, 3, 0, nil, 0) == 0)
    }

    @Test("the CPU forward rejects bad dtypes, shapes, pointers, scales and thread counts")
    func cpuForward() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])  // S = 64
        let headDim = 4, elements = 64 * headDim
        let input = [Float](repeating: 0.5, count: elements)
        var out = [Float](repeating: 0, count: elements), lse = [Float](repeating: 0, count: 64)
        func call(
            dtype: Int32 = 0, batch: Int64 = 1, headDim: Int64 = 4, q: UnsafeRawPointer? = nil, nullOut: Bool = false,
            nullLSE: Bool = false, scale: Double = 0, threads: Int32 = 0,
            _ message: UnsafeMutablePointer<CChar>?, _ length: Int
        ) -> Int32 {
            input.withUnsafeBytes { i in
                out.withUnsafeMutableBytes { o in
                    lse.withUnsafeMutableBufferPointer { l in
                        sta_forward_cpu(
                            plan.pointer, dtype, batch, headDim, q ?? i.baseAddress, i.baseAddress, i.baseAddress,
                            nullOut ? nil : o.baseAddress, nullLSE ? nil : l.baseAddress, scale, nil, threads, message,
                            length)
                    }
                }
            }
        }
        expectFailure(Self.invalidArgument, "dtype is 7") { call(dtype: 7, $0, $1) }
        expectFailure(Self.invalidArgument, "dtype is -1") { call(dtype: -1, $0, $1) }
        expectFailure(Self.invalidArgument, "batch is 0") { call(batch: 0, $0, $1) }
        expectFailure(Self.invalidArgument, "head_dim is -3") { call(headDim: -3, $0, $1) }
        expectFailure(Self.invalidArgument, "q is NULL") {
            sta_forward_cpu(plan.pointer, 0, 1, 4, nil, input, input, &out, &lse, 0, nil, 0, $0, $1)
        }
        expectFailure(Self.invalidArgument, "out is NULL") { call(nullOut: true, $0, $1) }
        expectFailure(Self.invalidArgument, "lse is NULL") { call(nullLSE: true, $0, $1) }
        expectFailure(Self.invalidArgument, "scale is -1") { call(scale: -1, $0, $1) }
        expectFailure(Self.invalidArgument, "scale is nan") { call(scale: .nan, $0, $1) }
        expectFailure(Self.invalidArgument, "scale is inf") { call(scale: .infinity, $0, $1) }
        expectFailure(Self.invalidArgument, "threads is -2") { call(threads: -2, $0, $1) }
        expectFailure(Self.invalidArgument, "not aligned to 4 bytes") { message, length in
            input.withUnsafeBytes { call(q: $0.baseAddress! + 2, message, length) }
        }
        // The checks ran before anything was written.
        #expect(out.allSatisfy { $0 == 0 })
        #expect(lse.allSatisfy { $0 == 0 })
        // A valid call succeeds, also without a message buffer.
        #expect(call(nil, 0) == 0)
        #expect(out.allSatisfy { abs($0 - 0.5) < 1e-6 })
    }
}

@Suite("C interface: CUDA argument checks (before any driver call)")
struct CInterfaceCUDAArgumentTests {
    @Test("bad dtype, kernel name, addresses, alignment and scale are rejected without touching a device")
    func arguments() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])
        let checks = CInterfaceErrorTests()
        let invalid = CInterfaceErrorTests.invalidArgument
        checks.expectFailure(invalid, "dtype f32 is not supported; allowed: bf16, f16") {
            sta_forward_cuda(plan.pointer, 0, 1, 128, 256, 256, 256, 256, 256, 0, 0, 0, 0, nil, $0, $1)
        }
        checks.expectFailure(invalid, "dtype is 3") {
            sta_forward_cuda(plan.pointer, 3, 1, 128, 256, 256, 256, 256, 256, 0, 0, 0, 0, nil, $0, $1)
        }
        checks.expectFailure(invalid, "kernel is \"turbo\"") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 256, 256, 256, 0, 0, 0, 0, "turbo", $0, $1)
        }
        checks.expectFailure(invalid, "v is a NULL device address") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 0, 256, 256, 0, 0, 0, 0, "auto", $0, $1)
        }
        checks.expectFailure(invalid, "out (0x108) is not aligned to 16 bytes") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 256, 264, 256, 0, 0, 0, 0, "auto", $0, $1)
        }
        checks.expectFailure(invalid, "lse (0x102) is not aligned to 4 bytes") {
            sta_forward_cuda(plan.pointer, 1, 1, 64, 256, 256, 256, 256, 258, 0, 0, 0, 0, "portable", $0, $1)
        }
        checks.expectFailure(invalid, "text_valid (0x102) is not aligned to 4 bytes") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 256, 256, 256, 0, 258, 0, 0, nil, $0, $1)
        }
        checks.expectFailure(invalid, "batch is 70000") {
            sta_forward_cuda(plan.pointer, 2, 70_000, 128, 256, 256, 256, 256, 256, 0, 0, 0, 0, nil, $0, $1)
        }
        checks.expectFailure(invalid, "device is -1") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 256, 256, 256, 0, 0, 0, -1, nil, $0, $1)
        }
        checks.expectFailure(invalid, "scale is -0.5") {
            sta_forward_cuda(plan.pointer, 2, 1, 128, 256, 256, 256, 256, 256, -0.5, 0, 0, 0, "hopper", $0, $1)
        }
    }

    @Test("kernel names parse case-insensitively; NULL means auto")
    func kernelNames() throws {
        #expect(try kernelPreference(nil) == .automatic)
        #expect(try kernelPreference("AUTO") == .automatic)
        #expect(try kernelPreference("portable") == .portable)
        #expect(try kernelPreference("Hopper") == .hopper)
        #expect(try kernelPreference("cpu") == .cpu)
        #expect(throws: CInterfaceError.self) { try kernelPreference(String(repeating: "x", count: 100)) }
    }
}

@Suite("C interface: messages")
struct CInterfaceMessageTests {
    @Test("messages are truncated to the buffer, NUL-terminated, never split inside a character")
    func truncation() {
        let buffer = MessageBuffer(length: 6)
        writeMessage("ab×cdef", to: buffer.storage, length: 6)  // × is two bytes: a b C3 97 c d
        #expect(buffer.text == "ab×c")
        writeMessage("ab×cdef", to: buffer.storage, length: 4)  // room for 3 bytes: "ab" + half of ×
        #expect(buffer.text == "ab")
        writeMessage("anything", to: buffer.storage, length: 1)
        #expect(buffer.text == "")
        writeMessage("ignored", to: nil, length: 10)
        writeMessage("ignored", to: buffer.storage, length: 0)
        writeMessage("ignored", to: buffer.storage, length: -5)
        #expect(buffer.text == "")
    }

    @Test("success clears the message buffer")
    func success() throws {
        let plan = try CPlan(canvas: [8], tile: [4], windows: [[1]])
        let buffer = MessageBuffer()
        var length: Int64 = 0
        #expect(sta_plan_sequence_length(plan.pointer, &length, buffer.storage, buffer.length) == 0)
        #expect(buffer.text == "")
        #expect(length == 8)
    }
}
