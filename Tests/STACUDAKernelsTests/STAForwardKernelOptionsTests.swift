import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// The value of `-DNAME=VALUE` in `options`, or nil (also when it is defined more than once).
func define(_ name: String, in options: [String]) -> String? {
    let prefix = "-D\(name)="
    let matches = options.filter { $0.hasPrefix(prefix) }
    guard matches.count == 1 else { return nil }
    return String(matches[0].dropFirst(prefix.count))
}

@Suite struct STAForwardKernelOptionsTests {
    @Test func threeDimensionalPlanWithText() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256, textValid: 200)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 3, 3]), heads: 4)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16, architecture: "sm_90a")
        #expect(options.contains("--gpu-architecture=sm_90a"))
        #expect(define("STA_HEAD_DIM", in: options) == "128")
        #expect(define("STA_BF16", in: options) == "1")
        #expect(define("STA_FP16", in: options) == nil)
        for (axis, name) in ["T", "H", "W"].enumerated() {
            #expect(define("STA_CANVAS_\(name)", in: options) == String(layout.canvas.extents[axis]))
            #expect(define("STA_TILE_\(name)", in: options) == String(layout.tile.extents[axis]))
            #expect(define("STA_GRID_\(name)", in: options) == String(layout.tileGrid[axis]))
        }
        #expect(define("STA_GRID_T", in: options) == "5")
        #expect(define("STA_TEXT_COUNT", in: options) == "256")
        // The valid length is a launch argument: the same options for every prompt length.
        #expect(!options.contains { $0.hasPrefix("-DSTA_TEXT_VALID") })
        let full = try AttentionPlan(
            layout: STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256, textValid: 256),
            window: Window(tiles: [3, 3, 3]), heads: 4)
        #expect(STAForwardKernel.compileOptions(plan: full, headDim: 128, dtype: .bfloat16, architecture: "sm_90a") == options)
    }

    @Test func paddedCanvasGridRoundsUp() throws {
        let layout = try STALayout(canvas: [21, 45, 80], tile: [6, 8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 5, 5]), heads: 2)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .float16, architecture: "sm_80")
        #expect(options.contains("--gpu-architecture=sm_80"))
        #expect(define("STA_FP16", in: options) == "1")
        #expect(define("STA_BF16", in: options) == nil)
        #expect(define("STA_HEAD_DIM", in: options) == "64")
        #expect(define("STA_GRID_T", in: options) == "4")
        #expect(define("STA_GRID_H", in: options) == "6")
        #expect(define("STA_CANVAS_H", in: options) == "45")
        #expect(define("STA_TEXT_COUNT", in: options) == "0")
    }

    @Test func twoDimensionalPlanPadsTheLeadingAxis() throws {
        let layout = try STALayout(canvas: [128, 128], tile: [8, 16])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [5, 5]), heads: 3)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 128, dtype: .bfloat16, architecture: "sm_90a")
        #expect(define("STA_CANVAS_T", in: options) == "1")
        #expect(define("STA_TILE_T", in: options) == "1")
        #expect(define("STA_GRID_T", in: options) == "1")
        #expect(define("STA_CANVAS_H", in: options) == "128")
        #expect(define("STA_TILE_H", in: options) == "8")
        #expect(define("STA_GRID_H", in: options) == "16")
        #expect(define("STA_CANVAS_W", in: options) == "128")
        #expect(define("STA_TILE_W", in: options) == "16")
        #expect(define("STA_GRID_W", in: options) == "8")
        // Every compile-time constant is defined exactly once: head dim, dtype, 3 × 3 axes, the text count,
        // then the block shape.
        let shape = STAForwardKernel.Shape.choose(headDim: 128, layout: layout, sharedMemoryPerBlock: 232_448).definitions
        #expect(options.filter { $0.hasPrefix("-D") }.count == 12 + shape.count)
        #expect(Set(options.filter { $0.hasPrefix("-D") }.map { $0.split(separator: "=")[0] }).count == 12 + shape.count)
    }

    @Test func oneDimensionalPlanPadsBothLeadingAxes() throws {
        let layout = try STALayout(canvas: [1000], tile: [96], textCount: 5, textValid: 3)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3]), heads: 1)
        let options = STAForwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80")
        #expect(define("STA_CANVAS_T", in: options) == "1")
        #expect(define("STA_CANVAS_H", in: options) == "1")
        #expect(define("STA_CANVAS_W", in: options) == "1000")
        #expect(define("STA_GRID_W", in: options) == "11")
        #expect(define("STA_TEXT_COUNT", in: options) == "5")
    }

    @Test func launchGeometry() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
        // 384-token tiles: 3 query blocks each; 256 text tokens: 2 blocks.
        #expect(STAForwardKernel.queryBlocksPerTile(layout: layout) == 3)
        #expect(layout.tileCount == 300)
        #expect(STAForwardKernel.queryBlocks(layout: layout) == 2 + 300 * 3)
        let odd = try STALayout(canvas: [10, 10], tile: [5, 7], textCount: 129)
        // 35-token tiles: one block each (a block never straddles tiles); 129 text tokens: 2 blocks.
        #expect(STAForwardKernel.queryBlocks(layout: odd) == 2 + odd.tileCount)
        #expect(STAForwardKernel.sharedMemoryBytes(headDim: 64) == 49_152)
        #expect(STAForwardKernel.sharedMemoryBytes(headDim: 128) == 98_304)
    }

    @Test func validationNamesWhatIsAllowed() {
        #expect(throws: Never.self) { try STAForwardKernel.validate(headDim: 128, dtype: .bfloat16) }
        #expect(throws: Never.self) { try STAForwardKernel.validate(headDim: 64, dtype: .float16) }
        do {
            try STAForwardKernel.validate(headDim: 96, dtype: .bfloat16)
            Issue.record("head dim 96 was accepted")
        } catch {
            #expect(error.description.contains("96"))
            #expect(error.description.contains("64, 128"))
        }
        do {
            try STAForwardKernel.validate(headDim: 64, dtype: .float32)
            Issue.record("float32 was accepted")
        } catch {
            #expect(error.description.contains("f32"))
            #expect(error.description.contains("bf16, f16"))
        }
    }

    @Test func embeddedSourceDeclaresTheEntryPoint() {
        let source = STAForwardKernel.source
        #expect(source.contains("extern \"C\" __global__"))
        #expect(source.contains(STAForwardKernel.functionName + "("))
        #expect(source.contains("int heads, float scale,"))
        #expect(source.contains("const int* text_valid, int default_text_valid)"))
        #expect(STAForwardKernel.sourceName.hasSuffix(".cu"))
    }
}
