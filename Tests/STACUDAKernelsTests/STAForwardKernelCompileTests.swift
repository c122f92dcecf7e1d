import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// Whether NVRTC can be loaded on this machine (no GPU needed to compile).
let nvrtcAvailable: Bool = (try? NVRTCCompiler.load()) != nil

/// One compile of the embedded kernel source.
struct CompileCase: Sendable, CustomTestStringConvertible {
    var name: String
    var canvas: [Int]
    var tile: [Int]
    var textCount: Int
    var textValid: Int
    var architecture: String
    var headDim: Int
    var dtype: DType

    var testDescription: String { "\(name) \(architecture) \(dtype) D\(headDim)" }
}

let compileCases: [CompileCase] = {
    var cases = [CompileCase]()
    // HunyuanVideo layout: every architecture, dtype and head dim.
    for architecture in ["sm_80", "sm_90a"] {
        for dtype in [DType.bfloat16, .float16] {
            for headDim in [64, 128] {
                cases.append(
                    CompileCase(
                        name: "hunyuan", canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256, textValid: 256,
                        architecture: architecture, headDim: headDim, dtype: dtype))
            }
        }
    }
    // Holes (padded T and H), a 2D image with partial text, a 1D sequence: the masking paths.
    for headDim in [64, 128] {
        cases.append(
            CompileCase(
                name: "wan (padded)", canvas: [21, 45, 80], tile: [6, 8, 8], textCount: 0, textValid: 0,
                architecture: "sm_90a", headDim: headDim, dtype: .bfloat16))
        cases.append(
            CompileCase(
                name: "image 2D", canvas: [100, 128], tile: [8, 16], textCount: 77, textValid: 70,
                architecture: "sm_80", headDim: headDim, dtype: .float16))
        cases.append(
            CompileCase(
                name: "1D", canvas: [1000], tile: [96], textCount: 5, textValid: 3,
                architecture: "sm_90a", headDim: headDim, dtype: .bfloat16))
    }
    return cases
}()

@Suite(.enabled(if: nvrtcAvailable, "NVRTC is not installed"))
struct STAForwardKernelCompileTests {
    /// Like the launcher: the candidate shapes in order, the first that compiles without spills is taken.
    /// Some candidate must be spill-free (the last, row blocks, always is in these cases).
    @Test(arguments: compileCases)
    func someCandidateCompilesWithoutSpills(_ test: CompileCase) throws {
        let layout = try STALayout(
            canvas: test.canvas, tile: test.tile, textCount: test.textCount, textValid: test.textValid)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: test.canvas.map { _ in 3 }), heads: 2)
        let candidates = STAForwardKernel.candidateOptions(
            plan: plan, headDim: test.headDim, dtype: test.dtype, architecture: test.architecture)
        var taken: (shape: STAForwardKernel.Shape, usage: KernelResourceUsage)?
        var logs = [String]()
        for candidate in candidates {
            let compiled = try STAForwardKernel.kernelSource.compile(
                with: NVRTCCompiler.load(), options: candidate.options + ["--ptxas-options=-v"])
            #expect(compiled.format == .cubin)
            let usage = try #require(compiled.resourceUsage.first { $0.functionName == STAForwardKernel.functionName })
            #expect(usage.architecture == test.architecture)
            logs.append(compiled.log)
            if !usage.spills && usage.stackFrameBytes == 0 {
                taken = (candidate.shape, usage)
                break
            }
        }
        let (shape, usage) = try #require(taken, "every candidate spills: \(logs.joined(separator: "\n"))")
        #expect(usage.registers > 0 && usage.registers <= 255)
        // Two blocks of 256 threads per SM: at most 128 registers.
        if shape.minBlocksPerSM == 2 && shape.threads == 256 { #expect(usage.registers <= 128) }
        // The static shared memory is only the two chunks' key-validity masks (a bit per key) and the row's
        // valid text length when there is text (ptxas rounds the total up to its allocation granule).
        #expect(usage.sharedBytes >= 2 * shape.blockKeys / 8 + (layout.text.count > 0 ? 4 : 0))
        #expect(usage.sharedBytes <= 2 * shape.blockKeys / 8 + 128)
    }

    @Test func missingConstantIsACompileErrorNamingIt() throws {
        let layout = try STALayout(canvas: [16, 16], tile: [8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 1)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80")
            .filter { !$0.hasPrefix("-DSTA_TEXT_COUNT") }
        do {
            _ = try STAForwardKernel.kernelSource.compile(
                with: NVRTCCompiler.load(), options: options)
            Issue.record("compiled without STA_TEXT_COUNT")
        } catch {
            #expect(error.description.contains("STA_TEXT_COUNT"))
        }
    }

    @Test func inconsistentGridIsRejected() throws {
        let layout = try STALayout(canvas: [16, 16], tile: [8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 1)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80")
            .map { $0.hasPrefix("-DSTA_GRID_W=") ? "-DSTA_GRID_W=3" : $0 }
        do {
            _ = try STAForwardKernel.kernelSource.compile(
                with: NVRTCCompiler.load(), options: options)
            Issue.record("compiled with a grid that does not match the canvas")
        } catch {
            #expect(error.description.contains("STA_GRID"))
        }
    }
}
