import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// NVRTC as the default search finds it (or `STA_NVRTC_PATH`), or nil: then the compile tests are skipped.
private let nvrtc: NVRTCCompiler? = try? NVRTCCompiler.load()

/// The suites' layouts (spec §7) the backward kernel is compiled for.
enum HopperBackwardLayout: String, CaseIterable, Sendable {
    /// HunyuanVideo: 30×48×80 tokens, tile 6×8×8 (no holes), 256 text tokens.
    case hunyuan
    /// Wan 2.1: 21×45×80 tokens, tile 6×8×8 (holes on two axes), no text.
    case wan
    /// Image: 256×256, tile 8×16 (128-token tiles).
    case image

    func plan() throws -> AttentionPlan {
        switch self {
        case .hunyuan:
            let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
            return try AttentionPlan(layout: layout, window: Window(tiles: [3, 3, 3]), heads: 24)
        case .wan:
            let layout = try STALayout(canvas: [21, 45, 80], tile: [6, 8, 8])
            return try AttentionPlan(layout: layout, window: Window(tiles: [3, 3, 3]), heads: 40)
        case .image:
            let layout = try STALayout(canvas: [256, 256], tile: [8, 16])
            return try AttentionPlan(layout: layout, window: Window(tiles: [5, 5]), heads: 24)
        }
    }
}

struct HopperBackwardCompileCase: Sendable, CustomTestStringConvertible {
    var layout: HopperBackwardLayout
    var dtype: DType
    var headDim: Int
    var testDescription: String { "\(layout.rawValue) \(dtype) D\(headDim)" }

    static let all: [HopperBackwardCompileCase] = HopperBackwardLayout.allCases.flatMap { layout in
        [DType.bfloat16, .float16].flatMap { dtype in
            [64, 128].map { HopperBackwardCompileCase(layout: layout, dtype: dtype, headDim: $0) }
        }
    }
}

@Suite(.enabled(if: nvrtc != nil, "NVRTC was not found")) struct HopperBackwardCompileTests {
    /// What the launcher does: compile the candidates in order and take the first without local memory.
    /// The one taken must compile all three kernels without spills or stack, within the launch bounds.
    @Test(arguments: HopperBackwardCompileCase.all)
    func someCandidateCompilesForSM90aWithoutSpills(_ c: HopperBackwardCompileCase) throws {
        let compiler = try #require(nvrtc)
        let candidates = STABackwardHopperKernel.candidateOptions(plan: try c.layout.plan(), headDim: c.headDim, dtype: c.dtype)
        var chosen: CompiledKernel?
        for candidate in candidates {
            let kernel = try STABackwardHopperKernel.kernelSource.compile(
                with: compiler, options: candidate.options + ["--ptxas-options=-v"])
            if kernel.resourceUsage.allSatisfy({ !$0.spills && $0.stackFrameBytes == 0 }) {
                chosen = kernel
                break
            }
        }
        let kernel = try #require(chosen, "every candidate spills")
        #expect(kernel.format == .cubin)
        for name in [
            STABackwardHopperKernel.prepareFunctionName, STABackwardHopperKernel.mainFunctionName,
            STABackwardHopperKernel.convertFunctionName,
        ] {
            let usage = try #require(kernel.resourceUsage.first { $0.functionName == name }, "\(name): log \(kernel.log)")
            #expect(usage.architecture == "sm_90a")
        }
        let main = try #require(kernel.resourceUsage.first { $0.functionName == STABackwardHopperKernel.mainFunctionName })
        // __launch_bounds__(384, 1): at most 65536 / 384 registers, rounded down to a multiple of 8.
        #expect(main.registers > 0 && main.registers <= 168)
        // ptxas warns when it cannot honour setmaxnreg or must serialise the wgmma pipeline.
        #expect(!kernel.log.contains("C7508"), "log: \(kernel.log)")
        #expect(!kernel.log.contains("serialized"), "log: \(kernel.log)")
    }

    /// The hunyuan layout has the registers to read all of the statistics ahead (the faster loop), so the
    /// launcher's first candidate compiles without local memory there.
    @Test func hunyuanTakesTheFirstCandidate() throws {
        let compiler = try #require(nvrtc)
        let first = STABackwardHopperKernel.candidateOptions(
            plan: try HopperBackwardLayout.hunyuan.plan(), headDim: 128, dtype: .bfloat16)[0]
        #expect(first.shape.statisticsAhead == .lseAndDelta)
        let kernel = try STABackwardHopperKernel.kernelSource.compile(
            with: compiler, options: first.options + ["--ptxas-options=-v"])
        let main = try #require(kernel.resourceUsage.first { $0.functionName == STABackwardHopperKernel.mainFunctionName })
        #expect(!main.spills && main.stackFrameBytes == 0, "log: \(kernel.log)")
    }

    @Test func missingShapeConstantsAreACompileError() throws {
        let compiler = try #require(nvrtc)
        let problem = specialisationOptions(
            plan: try HopperBackwardLayout.hunyuan.plan(), headDim: 128, dtype: .bfloat16, architecture: "sm_90a")
        let error = #expect(throws: CUDAError.self) {
            try STABackwardHopperKernel.kernelSource.compile(with: compiler, options: problem)
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("STA_BWD_BLOCK_N"))
    }
}

@Suite struct HopperBackwardShapeTests {
    @Test func compileOptionsNameEveryConstant() throws {
        let plan = try HopperBackwardLayout.hunyuan.plan()
        let options = STABackwardHopperKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16)
        for expected in [
            "--gpu-architecture=sm_90a", "-DSTA_HEAD_DIM=128", "-DSTA_BF16=1", "-DSTA_CANVAS_T=30", "-DSTA_GRID_W=10",
            "-DSTA_TEXT_COUNT=256", "-DSTA_THREADS=384", "-DSTA_BWD_BLOCK_N=128", "-DSTA_BWD_CHUNK=64",
            "-DSTA_BWD_STAGES=3", "-DSTA_BWD_SHARED_BYTES=215552", "-DSTA_BWD_STATS_AHEAD=2",
        ] {
            #expect(options.contains(expected), "\(expected) missing from \(options)")
        }
        let small = STABackwardHopperKernel.compileOptions(plan: plan, headDim: 64, dtype: .float16)
        #expect(small.contains("-DSTA_FP16=1") && small.contains("-DSTA_BWD_STAGES=4"))
    }

    @Test func candidatesDifferOnlyInTheStatisticsReadAhead() throws {
        let plan = try HopperBackwardLayout.wan.plan()
        let candidates = STABackwardHopperKernel.candidateOptions(plan: plan, headDim: 128, dtype: .bfloat16)
        #expect(candidates.map(\.shape.statisticsAhead) == [.lseAndDelta, .halfOfLSE])
        #expect(candidates[0].shape == STABackwardHopperKernel.Shape.choose(headDim: 128))
        #expect(candidates[0].options == STABackwardHopperKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16))
        #expect(candidates[1].options.contains("-DSTA_BWD_STATS_AHEAD=1"))
        let others = candidates.map { $0.options.filter { !$0.hasPrefix("-DSTA_BWD_STATS_AHEAD=") } }
        #expect(others[0] == others[1])
    }

    @Test(arguments: [64, 128])
    func sharedMemoryIsTheSumOfItsPartsAndFitsHopper(_ headDim: Int) {
        let shape = STABackwardHopperKernel.Shape.choose(headDim: headDim)
        let chunk = shape.queriesPerChunk * headDim * 2
        let parts = 1024 + 2 * shape.blockKeys * headDim * 2 + shape.stages * 2 * chunk
            + shape.blockKeys * shape.queriesPerChunk * 2 + shape.queriesPerChunk * headDim * 4
            + shape.stages * 2 * shape.queriesPerChunk * 4
        #expect(shape.sharedMemoryBytes == parts)
        #expect(shape.sharedMemoryBytes <= 232_448)  // the sm_90 opt-in limit
        #expect(shape.threads == 384 && shape.blockKeys == 128 && shape.queriesPerChunk == 64)
    }

    @Test func keyBlocksPutTextFirstAndNeverStraddleTiles() throws {
        let hunyuan = try HopperBackwardLayout.hunyuan.plan().layout
        // 256 text keys: 2 blocks; 300 tiles of 384 keys: 3 blocks each.
        #expect(STABackwardHopperKernel.keyBlocks(layout: hunyuan) == 2 + 300 * 3)
        let image = try HopperBackwardLayout.image.plan().layout
        #expect(STABackwardHopperKernel.keyBlocks(layout: image) == 32 * 16)
        let small = try STALayout(canvas: [1000], tile: [64])
        #expect(STABackwardHopperKernel.keyBlocks(layout: small) == 16)
    }

    @Test func workspaceHoldsAlignedArraysAndTheAccumulatorWithItsSlack() throws {
        let layout = STABackwardHopperKernel.WorkspaceLayout(rows: 1001, headDim: 128)
        #expect(layout.lse2Offset == 0)
        #expect(layout.deltaOffset == 4096)  // 1001 floats, rounded up to 256 bytes
        #expect(layout.accumulatorOffset == 8192)
        #expect(layout.accumulatorBytes == (1001 + 64) * 128 * 4)
        #expect(layout.byteCount == layout.accumulatorOffset + layout.accumulatorBytes)
        let plan = try HopperBackwardLayout.hunyuan.plan()
        let rows = 2 * 24 * plan.layout.sequenceLength
        #expect(
            STABackwardHopperKernel.workspaceByteCount(plan: plan, batch: 2, headDim: 64)
                == STABackwardHopperKernel.WorkspaceLayout(rows: rows, headDim: 64).byteCount)
        // More than the portable kernel's (LSE2 and Δ only): the float32 dq accumulator.
        #expect(
            STABackwardHopperKernel.workspaceByteCount(plan: plan, batch: 1, headDim: 128)
                > STABackwardKernel.workspaceByteCount(plan: plan, batch: 1) + 24 * plan.layout.sequenceLength * 128 * 4)
    }

    @Test func gridLimitsAreCheckedBeforeLaunch() throws {
        let layout = try HopperBackwardLayout.hunyuan.plan().layout
        #expect(throws: STAKernelError.self) { try STABackwardHopperKernel.validate(batch: 0, heads: 24, layout: layout) }
        #expect(throws: STAKernelError.self) {
            try STABackwardHopperKernel.validate(batch: 65_535, heads: 65_535, layout: layout)
        }
        try STABackwardHopperKernel.validate(batch: 4, heads: 24, layout: layout)
    }
}
