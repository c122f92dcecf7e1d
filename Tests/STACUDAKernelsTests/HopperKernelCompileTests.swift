import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// NVRTC as the default search finds it (or `STA_NVRTC_PATH`), or nil: then the compile tests are skipped.
private let nvrtc: NVRTCCompiler? = try? NVRTCCompiler.load()

enum HopperLayoutCase: String, CaseIterable, Sendable {
    /// HunyuanVideo 720p: 30×48×80 tokens, tile 6×8×8 (no holes), 256 text tokens.
    case hunyuan
    /// Wan 2.1 720p: 21×45×80 tokens, tile 6×8×8 (holes on two axes), no text.
    case paddedWan

    func plan() throws -> AttentionPlan {
        let layout: STALayout
        switch self {
        case .hunyuan: layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
        case .paddedWan: layout = try STALayout(canvas: [21, 45, 80], tile: [6, 8, 8])
        }
        return try AttentionPlan(layout: layout, window: Window(tiles: [3, 3, 3]), heads: 24)
    }
}

struct HopperCompileCase: Sendable, CustomTestStringConvertible {
    var layout: HopperLayoutCase
    var dtype: DType
    var headDim: Int
    var testDescription: String { "\(layout.rawValue) \(dtype) D\(headDim)" }

    static let all: [HopperCompileCase] = HopperLayoutCase.allCases.flatMap { layout in
        [DType.bfloat16, .float16].flatMap { dtype in
            [64, 128].map { HopperCompileCase(layout: layout, dtype: dtype, headDim: $0) }
        }
    }
}

@Suite(.enabled(if: nvrtc != nil, "NVRTC was not found")) struct HopperKernelCompileTests {
    @Test(arguments: HopperCompileCase.all)
    func compilesForSM90aWithoutSpills(_ c: HopperCompileCase) throws {
        let compiler = try #require(nvrtc)
        let plan = try c.layout.plan()
        let options =
            STAForwardHopperKernel.compileOptions(plan: plan, headDim: c.headDim, dtype: c.dtype)
            + ["--ptxas-options=-v"]
        let kernel = try STAForwardHopperKernel.kernelSource.compile(
                with: compiler, options: options)
        #expect(kernel.format == .cubin)
        let usage = try #require(
            kernel.resourceUsage.first { $0.functionName == STAForwardHopperKernel.functionName }, "log: \(kernel.log)")
        #expect(usage.architecture == "sm_90a")
        #expect(!usage.spills, "log: \(kernel.log)")
        #expect(usage.stackFrameBytes == 0, "log: \(kernel.log)")
        // __launch_bounds__(384, 1): at most 65536 / 384 registers, rounded down to a multiple of 8.
        #expect(usage.registers > 0 && usage.registers <= 168)
        // ptxas warns when it cannot honour setmaxnreg or must serialise the wgmma pipeline.
        #expect(!kernel.log.contains("C7508"), "log: \(kernel.log)")
        #expect(!kernel.log.contains("serialized"), "log: \(kernel.log)")
    }

    @Test func missingConstantsAreACompileError() throws {
        let compiler = try #require(nvrtc)
        #expect(throws: CUDAError.self) {
            try STAForwardHopperKernel.kernelSource.compile(
                with: compiler, options: ["--std=c++17", "--gpu-architecture=sm_90a", "-DSTA_HEAD_DIM=128", "-DSTA_BF16=1"])
        }
    }
}

@Suite struct HopperKernelShapeTests {
    @Test func compileOptionsNameEveryConstant() throws {
        let plan = try HopperLayoutCase.hunyuan.plan()
        let options = STAForwardHopperKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16)
        for expected in [
            "--gpu-architecture=sm_90a", "-DSTA_HEAD_DIM=128", "-DSTA_BF16=1", "-DSTA_CANVAS_T=30", "-DSTA_CANVAS_H=48",
            "-DSTA_CANVAS_W=80", "-DSTA_TILE_T=6", "-DSTA_TILE_H=8", "-DSTA_TILE_W=8", "-DSTA_GRID_T=5", "-DSTA_GRID_H=6",
            "-DSTA_GRID_W=10", "-DSTA_TEXT_COUNT=256", "-DSTA_STAGES=2",
        ] {
            #expect(options.contains(expected), "missing \(expected) in \(options)")
        }
        #expect(!options.contains { $0.hasPrefix("-DSTA_TEXT_VALID") }, "the valid text length is a launch argument")
        let half = STAForwardHopperKernel.compileOptions(plan: plan, headDim: 64, dtype: .float16)
        #expect(half.contains("-DSTA_FP16=1") && half.contains("-DSTA_HEAD_DIM=64") && half.contains("-DSTA_STAGES=4"))
    }

    @Test func imageLayoutsPadTheLeadingAxis() throws {
        let layout = try STALayout(canvas: [128, 128], tile: [8, 16])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [5, 5]), heads: 2)
        let options = STAForwardHopperKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16)
        #expect(options.contains("-DSTA_CANVAS_T=1") && options.contains("-DSTA_TILE_T=1"))
        #expect(options.contains("-DSTA_GRID_T=1") && options.contains("-DSTA_GRID_H=16") && options.contains("-DSTA_GRID_W=8"))
    }

    @Test func launchGeometry() throws {
        let hunyuan = try HopperLayoutCase.hunyuan.plan().layout
        // 384-token tiles are three 128-row blocks; 256 text tokens are two.
        #expect(STAForwardHopperKernel.queryBlocksPerTile(layout: hunyuan) == 3)
        #expect(STAForwardHopperKernel.queryBlocks(layout: hunyuan) == 2 + 300 * 3)
        let odd = try STALayout(canvas: [12, 18, 18], tile: [6, 6, 6], textCount: 50)
        #expect(STAForwardHopperKernel.queryBlocksPerTile(layout: odd) == 2)
        #expect(STAForwardHopperKernel.queryBlocks(layout: odd) == 1 + 18 * 2)
        // The Q block plus the K/V ring fits the 227 KiB a Hopper block may opt into.
        #expect(STAForwardHopperKernel.sharedMemoryBytes(headDim: 128) == 230_400)
        #expect(STAForwardHopperKernel.sharedMemoryBytes(headDim: 64) == 148_480)
        #expect(STAForwardHopperKernel.sharedMemoryBytes(headDim: 128) <= 232_448)
    }

    @Test func validationRejectsWhatTheKernelCannotRun() throws {
        #expect(throws: STAKernelError.self) { try STAForwardHopperKernel.validate(headDim: 96, dtype: .bfloat16) }
        #expect(throws: STAKernelError.self) { try STAForwardHopperKernel.validate(headDim: 128, dtype: .float32) }
        try STAForwardHopperKernel.validate(headDim: 64, dtype: .float16)
        let layout = try HopperLayoutCase.hunyuan.plan().layout
        #expect(throws: STAKernelError.self) {
            try STAForwardHopperKernel.validate(batch: 0, heads: 24, layout: layout)
        }
        #expect(throws: STAKernelError.self) {
            try STAForwardHopperKernel.validate(batch: 65_536, heads: 24, layout: layout)
        }
        try STAForwardHopperKernel.validate(batch: 2, heads: 24, layout: layout)
    }

    @Test func theArchitectureErrorPointsToThePortableKernel() {
        let text = STAKernelError.requiresHopper(architecture: "sm_80").description
        #expect(text.contains("sm_90"))
        #expect(text.contains("sm_80"))
        #expect(text.contains("STAForwardKernel"))
    }
}
