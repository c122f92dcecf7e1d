import SlidingTileAttention
import STACPUKernels
import STAReference
import Testing

@testable import STACInterface

@Suite("C interface: backward on the CPU")
struct CInterfaceBackwardTests {
    /// A 3-D plan with holes (5 is not a multiple of 2) and padding text (2 of 3 valid), three heads.
    let forward = CInterfaceForwardTests()

    /// Runs sta_forward_cpu then sta_backward_cpu in `T` (dtype code `code`), with per-row valid text
    /// lengths when `textValid` is given; returns the forward's output and lse and the gradients.
    func run<T: StorageScalar>(
        _ type: T.Type, code: Int32, c: CPlan, plan: AttentionPlan, batch: Int, headDim: Int, seed: UInt64,
        textValid: [Int32]? = nil
    ) throws -> (qkv: [[T]], dO: [T], out: [T], lse: [Float], dq: [T], dk: [T], dv: [T]) {
        let wide = try forward.inputs(plan, batch: batch, headDim: headDim, seed: seed)
        let qkv = wide.map { $0.map { T($0) } }
        let dO = try forward.inputs(plan, batch: batch, headDim: headDim, seed: seed + 10)[0].map { T($0) }
        let rows = batch * plan.heads * plan.layout.sequenceLength
        var out = [T](repeating: T(.nan), count: rows * headDim), lse = [Float](repeating: .nan, count: rows)
        let message = MessageBuffer()
        var status = sta_forward_cpu(
            c.pointer, code, Int64(batch), Int64(headDim), qkv[0], qkv[1], qkv[2], &out, &lse, 0, textValid, 2,
            message.storage, message.length)
        #expect(status == 0, "\(message.text)")
        var dq = [T](repeating: T(.nan), count: rows * headDim)
        var dk = dq, dv = dq
        status = sta_backward_cpu(
            c.pointer, code, Int64(batch), Int64(headDim), qkv[0], qkv[1], qkv[2], out, lse, dO, &dq, &dk, &dv, 0,
            textValid, 2, message.storage, message.length)
        #expect(status == 0, "\(message.text)")
        #expect(message.text.isEmpty)
        return (qkv, dO, out, lse, dq, dk, dv)
    }

    @Test("f32 gradients match the float64 reference; rows of holes and padding text are exactly 0")
    func float32() throws {
        let (c, plan) = try forward.plans()
        let batch = 2, headDim = 16
        let r = try run(Float.self, code: 0, c: c, plan: plan, batch: batch, headDim: headDim, seed: 3)
        let reference = try ReferenceAttention.backward(
            q: r.qkv[0], k: r.qkv[1], v: r.qkv[2], output: r.out, lse: r.lse, outputGradient: r.dO, batch: batch,
            headDim: headDim, plan: plan)
        for (name, got, want) in [("dq", r.dq, reference.dq), ("dk", r.dk, reference.dk), ("dv", r.dv, reference.dv)] {
            let norm = want.reduce(0) { $0 + $1 * $1 }
            let error = zip(got, want).reduce(0.0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }
            #expect(norm > 0, "\(name)")
            #expect((error / norm).squareRoot() < 1e-5, "\(name): \((error / norm).squareRoot())")
        }
        let real = ReferenceAttention.realQueryMask(layout: plan.layout)
        #expect(real.contains(false))  // the plan has holes and padding text
        for row in 0..<(r.lse.count) where !real[row % plan.layout.sequenceLength] {
            let range = (row * headDim)..<((row + 1) * headDim)
            #expect(r.dq[range].allSatisfy { $0 == 0 } && r.dk[range].allSatisfy { $0 == 0 } && r.dv[range].allSatisfy { $0 == 0 })
        }
    }

    @Test("per-row valid text lengths reach the kernels: forward and gradients match the float64 reference")
    func perRowText() throws {
        let (c, plan) = try forward.plans()  // 3 text tokens, plan default 2
        let batch = 3, headDim = 8
        let lengths: [Int32] = [0, 3, 1]
        let r = try run(Float.self, code: 0, c: c, plan: plan, batch: batch, headDim: headDim, seed: 41, textValid: lengths)
        let valid = lengths.map(Int.init)
        let reference = try ReferenceAttention.backward(
            q: r.qkv[0], k: r.qkv[1], v: r.qkv[2], output: r.out, lse: r.lse, outputGradient: r.dO, batch: batch,
            headDim: headDim, plan: plan, textValid: valid)
        for (name, got, want) in [("dq", r.dq, reference.dq), ("dk", r.dk, reference.dk), ("dv", r.dv, reference.dv)] {
            let norm = want.reduce(0) { $0 + $1 * $1 }
            let error = zip(got, want).reduce(0.0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }
            #expect((error / norm).squareRoot() < 1e-5, "\(name): \((error / norm).squareRoot())")
        }
        // The text rows past each row's length attend nothing: lse −∞; and the lengths differ from the
        // plan's default, so the call used them.
        let s = plan.layout.sequenceLength, text = plan.layout.paddedVideoTokenCount
        for b in 0..<batch {
            for h in 0..<plan.heads {
                for t in 0..<3 {
                    let lse = r.lse[(b * plan.heads + h) * s + text + t]
                    #expect((t < valid[b]) == lse.isFinite, "row \(b) head \(h) text \(t): \(lse)")
                }
            }
        }
    }

    @Test("bf16 and f16 gradients are the CPU kernel's fp32 gradients rounded once to the input dtype")
    func sixteenBit() throws {
        let (c, plan) = try forward.plans()
        let batch = 1, headDim = 8
        func check<T: StorageScalar & Equatable>(_ type: T.Type, code: Int32) throws {
            let r = try run(T.self, code: code, c: c, plan: plan, batch: batch, headDim: headDim, seed: 21)
            let direct = try CPUAttention.backward(
                plan: plan, batch: batch, headDim: headDim, q: r.qkv[0], k: r.qkv[1], v: r.qkv[2], output: r.out,
                lse: r.lse, outputGradient: r.dO)
            #expect(r.dq.map(\.floatValue) == direct.dq.map { T($0).floatValue })
            #expect(r.dk.map(\.floatValue) == direct.dk.map { T($0).floatValue })
            #expect(r.dv.map(\.floatValue) == direct.dv.map { T($0).floatValue })
        }
        try check(Float16.self, code: 1)
        try check(BFloat16.self, code: 2)
    }

    @Test("bad arguments are refused with a message, and nothing is written")
    func errors() throws {
        let (c, plan) = try forward.plans()
        let headDim = 4
        let elements = plan.heads * plan.layout.sequenceLength * headDim
        let input = [Float](repeating: 0.25, count: elements)
        let lse = [Float](repeating: 0, count: plan.heads * plan.layout.sequenceLength)
        var dq = [Float](repeating: 7, count: elements)
        let checks = CInterfaceErrorTests()
        let invalid = CInterfaceErrorTests.invalidArgument
        func call(
            dtype: Int32 = 0, batch: Int64 = 1, nullDQ: Bool = false, scale: Double = 0, textValid: [Int32]? = nil,
            threads: Int32 = 0, _ message: UnsafeMutablePointer<CChar>?, _ length: Int
        ) -> Int32 {
            dq.withUnsafeMutableBytes { dqp in
                sta_backward_cpu(
                    c.pointer, dtype, batch, Int64(headDim), input, input, input, input, lse, input,
                    nullDQ ? nil : dqp.baseAddress, dqp.baseAddress, dqp.baseAddress, scale, textValid, threads,
                    message, length)
            }
        }
        checks.expectFailure(invalid, "dtype is 5") { call(dtype: 5, $0, $1) }
        checks.expectFailure(invalid, "batch is 0") { call(batch: 0, $0, $1) }
        checks.expectFailure(invalid, "dq is NULL") { call(nullDQ: true, $0, $1) }
        checks.expectFailure(invalid, "scale is -1") { call(scale: -1, $0, $1) }
        checks.expectFailure(invalid, "scale is inf") { call(scale: .infinity, $0, $1) }
        checks.expectFailure(invalid, "threads is -2") { call(threads: -2, $0, $1) }
        checks.expectFailure(invalid, "text_valid[0] is 9; each entry must be in 0...3") { call(textValid: [9], $0, $1) }
        var dk = dq, dv = dq
        checks.expectFailure(CInterfaceErrorTests.invalidHandle, "not a live plan") {
            sta_backward_cpu(
                OpaquePointer(bitPattern: 0x99_0000), 0, 1, 4, input, input, input, input, lse, input, &dq, &dk, &dv, 0,
                nil, 0, $0, $1)
        }
        #expect(dq.allSatisfy { $0 == 7 })
    }
}

@Suite("C interface: backward on CUDA, argument checks (before any driver call)")
struct CInterfaceCUDABackwardArgumentTests {
    @Test("bad dtype, kernel, addresses, workspace and scale are rejected without touching a device")
    func arguments() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])
        let checks = CInterfaceErrorTests()
        let invalid = CInterfaceErrorTests.invalidArgument
        func call(
            dtype: Int32 = 2, dout: UInt64 = 256, dq: UInt64 = 256, scale: Double = 0, workspace: UInt64 = 0,
            workspaceBytes: Int64 = 0, device: Int32 = 0, kernel: String? = nil,
            _ message: UnsafeMutablePointer<CChar>?, _ length: Int
        ) -> Int32 {
            sta_backward_cuda(
                plan.pointer, dtype, 1, 64, 256, 256, 256, 256, 256, dout, dq, 256, 256, scale, 0, workspace,
                workspaceBytes, 0, device, kernel, message, length)
        }
        checks.expectFailure(invalid, "dtype f32 is not supported; allowed: bf16, f16") { call(dtype: 0, $0, $1) }
        checks.expectFailure(invalid, "the hopper kernel cannot run backward attention in f32") { call(dtype: 0, kernel: "hopper", $0, $1) }
        checks.expectFailure(invalid, "the cpu kernel cannot run this call: it runs on the CPU") { call(kernel: "cpu", $0, $1) }
        checks.expectFailure(invalid, "dout is a NULL device address") { call(dout: 0, $0, $1) }
        checks.expectFailure(invalid, "dq (0x108) is not aligned to 16 bytes") { call(dq: 264, $0, $1) }
        checks.expectFailure(invalid, "workspace (0x180) is not aligned to 256 bytes") { call(workspace: 384, $0, $1) }
        checks.expectFailure(invalid, "workspace_bytes is -1") { call(workspaceBytes: -1, $0, $1) }
        checks.expectFailure(invalid, "device is -2") { call(device: -2, $0, $1) }
        checks.expectFailure(invalid, "scale is -0.5") { call(scale: -0.5, $0, $1) }
        var bytes: Int64 = -1
        checks.expectFailure(invalid, "dtype f32 is not supported; allowed: bf16, f16") {
            sta_backward_cuda_workspace_size(plan.pointer, 0, 1, 64, 0, nil, &bytes, $0, $1)
        }
        checks.expectFailure(invalid, "bytes is NULL") {
            sta_backward_cuda_workspace_size(plan.pointer, 2, 1, 64, 0, nil, nil, $0, $1)
        }
        #expect(bytes == -1)
    }
}

@Suite("C interface: kernel choice and version")
struct CInterfaceKernelChoiceTests {
    func choice(
        _ plan: CPlan, dtype: Int32 = 0, headDim: Int64 = 64, direction: Int32 = 0, device: Int32 = -1,
        kernel: String? = nil, nameLength: Int = 16
    ) -> (status: Int32, name: String, message: String) {
        let name = MessageBuffer(length: nameLength), message = MessageBuffer()
        let status = sta_kernel_choice(
            plan.pointer, dtype, headDim, direction, device, kernel, name.storage, nameLength, message.storage,
            message.length)
        return (status, status == 0 ? name.text : "", message.text)
    }

    @Test("the CPU runs every dtype of the CPU kernel in both directions")
    func cpu() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])
        for dtype: Int32 in [0, 1, 2] {
            for direction: Int32 in [0, 1] {
                let result = choice(plan, dtype: dtype, headDim: 40, direction: direction)
                #expect(result.status == 0 && result.name == "cpu", "\(result.message)")
            }
        }
        #expect(choice(plan, kernel: "cpu").name == "cpu")
        #expect(choice(plan, kernel: "auto").name == "cpu")
        #expect(choice(plan, nameLength: 3).name == "cp")  // truncated, NUL-terminated
    }

    @Test("refusals carry the call's own message")
    func refusals() throws {
        let plan = try CPlan(canvas: [8, 8], tile: [4, 4], windows: [[1, 1]])
        let hopper = choice(plan, kernel: "hopper")
        #expect(hopper.status == CInterfaceErrorTests.invalidArgument)
        #expect(hopper.message.contains("the hopper kernel cannot run this call: it runs on a CUDA device"))
        #expect(choice(plan, direction: 2).message.contains("direction is 2"))
        #expect(choice(plan, dtype: 4).message.contains("dtype is 4"))
        #expect(choice(plan, headDim: 0).message.contains("head_dim is 0"))
        #expect(choice(plan, device: -3).message.contains("device is -3"))
        #expect(choice(plan, kernel: "turbo").message.contains("kernel is \"turbo\""))
        // A CUDA call in float32: refused before any device is opened, with the forward call's message.
        let cuda = choice(plan, dtype: 0, device: 0)
        #expect(cuda.status == CInterfaceErrorTests.invalidArgument)
        let message = MessageBuffer()
        let status = sta_forward_cuda(
            plan.pointer, 0, 1, 64, 256, 256, 256, 256, 256, 0, 0, 0, 0, nil, message.storage, message.length)
        #expect(status == cuda.status && message.text == cuda.message)
    }

    @Test("version 2 of the interface; the library version is the package's")
    func versions() {
        #expect(sta_interface_version() == 2)
        #expect(String(cString: sta_version()) == SlidingTileAttentionVersion.string)
    }
}
