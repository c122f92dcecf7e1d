import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// The exact-rows kernels (`sta_exact_rows.cu`) compile for every architecture, dtype and head dim the fast
/// kernels run, on layouts with holes and text, without spills.
@Suite(.enabled(if: nvrtcAvailable, "NVRTC is not installed"))
struct ExactRowsKernelCompileTests {
    static let cases: [CompileCase] = {
        var cases = [CompileCase]()
        for architecture in ["sm_80", "sm_90a"] {
            for dtype in [DType.bfloat16, .float16] {
                for headDim in [64, 128] {
                    cases.append(
                        CompileCase(
                            name: "padded 3D with text", canvas: [10, 20, 20], tile: [4, 8, 8], textCount: 16,
                            textValid: 12, architecture: architecture, headDim: headDim, dtype: dtype))
                }
            }
        }
        cases.append(
            CompileCase(
                name: "1D without text", canvas: [1000], tile: [64], textCount: 0, textValid: 0,
                architecture: "sm_80", headDim: 128, dtype: .bfloat16))
        return cases
    }()

    @Test(arguments: cases)
    func compilesWithoutSpills(_ test: CompileCase) throws {
        let layout = try STALayout(
            canvas: test.canvas, tile: test.tile, textCount: test.textCount, textValid: test.textValid)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: test.canvas.map { _ in 3 }), heads: 2)
        let options =
            STAExactRowsKernel.compileOptions(
                plan: plan, headDim: test.headDim, dtype: test.dtype, architecture: test.architecture)
            + ["--ptxas-options=-v"]
        let compiled = try STAExactRowsKernel.kernelSource.compile(with: NVRTCCompiler.load(), options: options)
        #expect(compiled.format == .cubin)
        for name in [
            STAExactRowsKernel.forwardFunctionName, STAExactRowsKernel.backwardClearFunctionName,
            STAExactRowsKernel.backwardQueriesFunctionName, STAExactRowsKernel.backwardKeysFunctionName,
        ] {
            let usage = try #require(compiled.resourceUsage.first { $0.functionName == name }, "\(compiled.log)")
            #expect(usage.architecture == test.architecture)
            #expect(!usage.spills, "\(name): \(compiled.log)")
            #expect(usage.registers > 0 && usage.registers <= 255)
        }
    }

    /// The workspace: B · H · S doubles, then (256-byte aligned) one mark byte per row.
    @Test func backwardWorkspaceHoldsTheFloat64LSEAndTheMarks() throws {
        let layout = try STALayout(canvas: [10], tile: [5], textCount: 3)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: 2)
        #expect(STAExactRowsKernel.backwardWorkspaceByteCount(plan: plan, batch: 3) == 768 + 3 * 2 * 13)
        let big = try AttentionPlan(layout: STALayout(canvas: [4096], tile: [64]), window: Window(tiles: [1]), heads: 1)
        #expect(STAExactRowsKernel.backwardWorkspaceByteCount(plan: big, batch: 1) == 4096 * 8 + 4096)
    }

    @Test func missingThreadCountIsACompileErrorNamingIt() throws {
        let layout = try STALayout(canvas: [16, 16], tile: [8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 1)
        let options = STAExactRowsKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80")
            .filter { !$0.hasPrefix("-DSTA_EXACT_THREADS") }
        do {
            _ = try STAExactRowsKernel.kernelSource.compile(with: NVRTCCompiler.load(), options: options)
            Issue.record("compiled without STA_EXACT_THREADS")
        } catch {
            #expect(error.description.contains("STA_EXACT_THREADS"))
        }
    }
}
