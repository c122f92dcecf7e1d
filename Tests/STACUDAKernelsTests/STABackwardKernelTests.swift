import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// One compile of the backward source.
struct BackwardCompileCase: Sendable, CustomTestStringConvertible {
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

let backwardCompileCases: [BackwardCompileCase] = {
    var cases = [BackwardCompileCase]()
    for architecture in ["sm_80", "sm_90a"] {
        for dtype in [DType.bfloat16, .float16] {
            for headDim in [64, 128] {
                cases.append(
                    BackwardCompileCase(
                        name: "hunyuan", canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256, textValid: 256,
                        architecture: architecture, headDim: headDim, dtype: dtype))
            }
        }
    }
    // Holes on two axes, padded text.
    for headDim in [64, 128] {
        cases.append(
            BackwardCompileCase(
                name: "padded", canvas: [21, 45, 80], tile: [6, 8, 8], textCount: 40, textValid: 29,
                architecture: "sm_80", headDim: headDim, dtype: .bfloat16))
    }
    return cases
}()

@Suite(.enabled(if: nvrtcAvailable, "NVRTC is not installed"))
struct STABackwardKernelCompileTests {
    @Test(arguments: backwardCompileCases)
    func compilesWithoutSpills(_ test: BackwardCompileCase) throws {
        let layout = try STALayout(
            canvas: test.canvas, tile: test.tile, textCount: test.textCount, textValid: test.textValid)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: test.canvas.map { _ in 3 }), heads: 2)
        let options =
            STABackwardKernel.compileOptions(
                plan: plan, headDim: test.headDim, dtype: test.dtype, architecture: test.architecture)
            + ["--ptxas-options=-v"]
        let compiled = try STABackwardKernel.kernelSource.compile(
                with: NVRTCCompiler.load(), options: options)
        #expect(compiled.format == .cubin)
        for name in [
            STABackwardKernel.prepareFunctionName, STABackwardKernel.keysFunctionName,
            STABackwardKernel.queriesFunctionName,
        ] {
            let usage = try #require(compiled.resourceUsage.first { $0.functionName == name }, "\(name)")
            #expect(usage.architecture == test.architecture)
            #expect(!usage.spills, "\(name): \(compiled.log)")
            #expect(usage.stackFrameBytes == 0, "\(name): \(compiled.log)")
            #expect(usage.registers > 0 && usage.registers <= 255)
        }
    }

    @Test func missingConstantIsACompileErrorNamingIt() throws {
        let layout = try STALayout(canvas: [16, 16], tile: [8, 8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1]), heads: 1)
        let options = STABackwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .float16, architecture: "sm_80")
            .filter { !$0.hasPrefix("-DSTA_HEAD_DIM") }
        do {
            _ = try STABackwardKernel.kernelSource.compile(
                with: NVRTCCompiler.load(), options: options)
            Issue.record("compiled without STA_HEAD_DIM")
        } catch {
            #expect(error.description.contains("STA_HEAD_DIM"))
        }
    }
}

@Suite struct STABackwardKernelTableTests {
    /// Every (window, key tile, query tile) triple is in the inverse lists exactly when the key tile is
    /// in the query tile's list, rows ascending and the row starts consistent.
    @Test(arguments: [
        ([30, 48, 80], [6, 8, 8], [[3, 3, 3], [5, 3, 3], [1, 6, 10]]),
        ([21, 45, 80], [6, 8, 8], [[3, 3, 3], [3, 5, 5]]),
        ([100, 128], [8, 16], [[5, 5], [1, 3]]),
        ([1000], [96], [[3], [11], [1]]),
    ])
    func inverseListsMatchBruteForce(canvas: [Int], tile: [Int], windows: [[Int]]) throws {
        let layout = try STALayout(canvas: canvas, tile: tile)
        let plan = try AttentionPlan(layout: layout, headWindows: windows.map { Window(tiles: $0) })
        let (start, tiles) = plan.inverseKeyTileLists()
        let tileCount = layout.tileCount
        try #require(start.count == plan.windows.count * tileCount + 1)
        #expect(start.first == 0 && Int(start.last!) == tiles.count)
        #expect(tiles.count == plan.keyTiles.count)
        for window in 0..<plan.windows.count {
            // Brute force: which query tiles list each key tile.
            var expected = [[Int32]](repeating: [], count: tileCount)
            for queryTile in 0..<tileCount {
                let row = window * tileCount + queryTile
                for keyTile in plan.keyTiles[Int(plan.keyTileStart[row])..<Int(plan.keyTileStart[row + 1])] {
                    expected[Int(keyTile)].append(Int32(queryTile))
                }
            }
            for keyTile in 0..<tileCount {
                let row = window * tileCount + keyTile
                let got = Array(tiles[Int(start[row])..<Int(start[row + 1])])
                #expect(got == expected[keyTile], "window \(window) key tile \(keyTile)")
                #expect(got == got.sorted())
            }
        }
    }

    @Test func launchShapes() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256, textValid: 256)
        #expect(STABackwardKernel.keyBlocks(layout: layout) == 2 + 300 * 3)
        #expect(STABackwardKernel.queryBlocks(layout: layout) == 2 + 300 * 3)
        #expect(STABackwardKernel.keysSharedMemoryBytes(headDim: 128) == 98_304)
        #expect(STABackwardKernel.queriesSharedMemoryBytes(headDim: 128) == 131_072)
        #expect(STABackwardKernel.keysSharedMemoryBytes(headDim: 64) == 65_536)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 3, 3]), heads: 24)
        // LSE2, then Δ from the next 256-byte boundary (2 · 24 · 115,456 · 4 bytes is a multiple of 256).
        #expect(STABackwardKernel.workspaceByteCount(plan: plan, batch: 2) == 2 * 2 * 24 * 115_456 * 4)
        let odd = try AttentionPlan(
            layout: STALayout(canvas: [10], tile: [5], textCount: 3), window: Window(tiles: [1]), heads: 1)
        // 13 rows: 52 bytes of LSE2 padded to 256, then 52 bytes of Δ.
        #expect(STABackwardKernel.workspaceByteCount(plan: odd, batch: 1) == 256 + 52)
    }
}
