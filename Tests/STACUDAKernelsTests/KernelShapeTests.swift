import CUDADriver
import STAGeometry
import STATensors
import Testing

@testable import STACUDAKernels

/// The kernel shapes come from Swift alone: the launchers choose them, the kernels have no defaults.
@Suite struct KernelShapeTests {
    private let hunyuan = try! AttentionPlan(
        layout: STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256), window: Window(tiles: [3, 3, 3]),
        heads: 2)
    private let padded = try! AttentionPlan(
        layout: STALayout(canvas: [21, 45, 80], tile: [6, 8, 8]), window: Window(tiles: [3, 3, 3]), heads: 2)

    @Test func thePortableShapesFollowHeadDimAndSharedMemory() {
        let h200 = STAForwardKernel.Shape.typicalSharedMemoryPerBlock(architecture: "sm_90a")
        let a100 = STAForwardKernel.Shape.typicalSharedMemoryPerBlock(architecture: "sm_80")
        let rtx = STAForwardKernel.Shape.typicalSharedMemoryPerBlock(architecture: "sm_89")
        #expect(h200 == 232_448 && a100 == 166_912 && rtx == 101_376)
        // D 128 on an H200: row pairs with 64-key chunks in one step, then in two 32-key steps, then row blocks.
        let d128 = STAForwardKernel.Shape.candidates(headDim: 128, layout: hunyuan.layout, sharedMemoryPerBlock: h200)
        #expect(d128.map(\.rowsPerWarp) == [32, 32, 16] && d128.map(\.blockKeys) == [64, 64, 64])
        #expect(d128.map(\.stepKeys) == [64, 32, 64] && d128.map(\.threads) == [128, 128, 256])
        #expect(d128[0].minBlocksPerSM == 2 && !d128[0].queriesInRegisters && d128[0].sharedMemoryBytes == 98_304)
        #expect(d128[2].minBlocksPerSM == 1 && d128[2].queriesInRegisters && d128[2].sharedMemoryBytes == 98_304)
        // Every shape has 128 query rows per block (the grid does not depend on the shape) and needs at most
        // what `sharedMemoryBytes(headDim:)` asks of a device.
        for shape in d128 {
            #expect(shape.blockQueries == 128 && shape.rowsPerWarp * shape.threads / 32 == 128)
            #expect(shape.sharedMemoryBytes <= STAForwardKernel.sharedMemoryBytes(headDim: 128))
            #expect(shape.blockKeys % shape.stepKeys == 0)
        }
        // On an A100 two 96 KiB blocks do not fit an SM: row pairs with 32-key chunks (64 KiB), then row blocks.
        let onA100 = STAForwardKernel.Shape.candidates(headDim: 128, layout: hunyuan.layout, sharedMemoryPerBlock: a100)
        #expect(onA100.map(\.blockKeys) == [32, 64] && onA100[0].sharedMemoryBytes == 65_536 && onA100[0].rowsPerWarp == 32)
        // On 100 KiB parts only one block fits either way: row blocks (8 warps) alone.
        #expect(STAForwardKernel.Shape.candidates(headDim: 128, layout: hunyuan.layout, sharedMemoryPerBlock: rtx).map(\.rowsPerWarp) == [16])
        // D 64: row blocks, two per SM, then one, with and without holes.
        for layout in [hunyuan.layout, padded.layout] {
            let d64 = STAForwardKernel.Shape.candidates(headDim: 64, layout: layout, sharedMemoryPerBlock: h200)
            #expect(d64.map(\.minBlocksPerSM) == [2, 1] && d64.allSatisfy { $0.threads == 256 && !$0.queriesInRegisters })
            #expect(d64[0].sharedMemoryBytes == 49_152)
        }
        // compileOptions is the first candidate's; candidateOptions carries every shape's definitions.
        let options = STAForwardKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_90a")
        for definition in d128[0].definitions { #expect(options.contains(definition)) }
        let all = STAForwardKernel.candidateOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_90a")
        #expect(all.map(\.shape) == d128)
        for (shape, options) in all { for definition in shape.definitions { #expect(options.contains(definition)) } }
        #expect(STAForwardKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_80")
            .contains("-DSTA_BLOCK_N=32"))
    }

    /// The launcher's choice among candidates, with the loads faked: the first without local memory, else
    /// the last; nothing is loaded past the one taken, and a load error is passed on.
    @Test func theFirstCandidateWithoutLocalMemoryIsTaken() throws {
        func choose(_ local: [Int]) throws(CUDAError) -> (index: Int, loaded: [Int]) {
            var asked = [Int]()
            let chosen = try firstWithoutLocalMemory(count: local.count) { (index) throws(CUDAError) in
                asked.append(index)
                return ("kernel \(index)", local[index])
            }
            #expect(chosen.loaded == "kernel \(chosen.index)")
            return (chosen.index, asked)
        }
        #expect(try choose([0, 0, 0]) == (0, [0]))
        #expect(try choose([16, 0, 0]) == (1, [0, 1]))
        #expect(try choose([16, 8, 0]) == (2, [0, 1, 2]))
        #expect(try choose([16, 8, 4]) == (2, [0, 1, 2]))   // every one spills: the last serves
        #expect(try choose([24]) == (0, [0]))
        #expect(throws: CUDAError.self) {
            _ = try firstWithoutLocalMemory(count: 2) { (index) throws(CUDAError) -> (loaded: Int, localBytes: Int) in
                if index == 1 { throw .invalidArgument(function: "load", message: "no module") }
                return (index, 8)
            }
        }
    }

    @Test func theDevelopmentShapeParsesOrSaysNo() {
        let wide = STAForwardKernel.Shape(development: "32x64x32", headDim: 128)
        #expect(wide == .rowPairs(headDim: 128, blockKeys: 64, stepKeys: 32))
        let rows16 = STAForwardKernel.Shape(development: "16x32x32", headDim: 128)
        #expect(rows16?.threads == 256 && rows16?.blockKeys == 32 && rows16?.sharedMemoryBytes == (128 + 128) * 256)
        for bad in ["", "32x64", "24x64x32", "32x48x16", "32x64x48", "32x64x8", "32x256x64", "axbxc", "32x64x32x1"] {
            #expect(STAForwardKernel.Shape(development: bad, headDim: 128) == nil, "\(bad)")
        }
    }

    @Test func theHopperAndBackwardShapesAreInTheirOptions() {
        let hopper = STAForwardHopperKernel.Shape.choose(headDim: 128, layout: hunyuan.layout)
        #expect(hopper.threads == 384 && hopper.blockKeys == 192 && hopper.stages == 2 && hopper.sharedMemoryBytes == 230_400)
        // 128-token image tiles take 128-key chunks (192 would fill each to two thirds); the shared memory
        // stays sized for the largest chunk.
        let image = try! STALayout(canvas: [128, 128], tile: [8, 16])
        let imageShape = STAForwardHopperKernel.Shape.choose(headDim: 128, layout: image)
        #expect(imageShape.blockKeys == 128 && imageShape.sharedMemoryBytes == 230_400)
        #expect(STAForwardHopperKernel.Shape.choose(headDim: 64, layout: hunyuan.layout).blockKeys == 128)
        let hopperOptions = STAForwardHopperKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16)
        for definition in hopper.definitions { #expect(hopperOptions.contains(definition)) }
        #expect(hopper.keySlices == 0 && hopperOptions.contains("-DSTA_KEY_SLICES=0"))
        let backward = STABackwardKernel.Shape.choose(headDim: 128)
        #expect(backward.queriesPerChunk == 32 && STABackwardKernel.Shape.choose(headDim: 64).queriesPerChunk == 64)
        #expect(backward.keysSharedMemoryBytes == 98_304 && backward.queriesSharedMemoryBytes == 131_072)
        let backwardOptions = STABackwardKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_80")
        for definition in backward.definitions { #expect(backwardOptions.contains(definition)) }
    }

    /// Tiles padded along H alone load their real keys in packed chunks of whole t-slices when that issues at
    /// most three quarters of the keys of whole chunks; nothing else packs.
    @Test func theHopperKernelPacksTheKeysOfTilesPaddedAlongH() throws {
        func slices(_ canvas: [Int], _ tile: [Int], headDim: Int = 128) throws -> Int {
            try STAForwardHopperKernel.Shape.choose(headDim: headDim, layout: STALayout(canvas: canvas, tile: tile)).keySlices
        }
        // wan: 5 of 8 rows real, 40 keys per slice; 2 slices make 80 (16 | 80), 3 make 120 (not a multiple
        // of 16), 6 make 240 (more than 192 keys): 3 chunks of 80 keys for 2 of 192.
        #expect(try slices([21, 45, 80], [6, 8, 8]) == 2)
        #expect(STAForwardHopperKernel.Shape.sliceKeys(layout: padded.layout) == 40)
        // D 64 (chunks of 128): still 2 slices of 40.
        #expect(try slices([21, 45, 80], [6, 8, 8], headDim: 64) == 2)
        // 4 of 8 rows real, 4 slices of 32 keys in one chunk of 128 (for two of 128).
        #expect(try slices([10, 20, 20], [4, 8, 8]) == 4)
        // 7 of 8 rows real: 2 slices of 56 = 112 keys per chunk, 336 keys for 384, more than three quarters.
        #expect(try slices([12, 47, 16], [6, 8, 8]) == 0)
        // Not padded along H, or not 3D.
        #expect(try slices([30, 48, 80], [6, 8, 8]) == 0)
        #expect(try slices([21, 48, 80], [6, 8, 8]) == 0)
        #expect(try slices([40, 56], [8, 16]) == 0)
    }

    @Test func noKernelFileDefaultsAShapeOrKeepsAnUnusedSwitch() {
        for source in [STAForwardKernel.kernelSource, STAForwardHopperKernel.kernelSource, STABackwardKernel.kernelSource] {
            for (name, text) in [(source.name, source.text)] + source.headers.map({ ($0.name, $0.text) }) {
                #expect(!text.contains("#ifndef STA_"), "\(name) defaults a -D constant")
                for retired in ["STA_PINGPONG", "STA_SKIP_RESCALE", "STA_MASK_TABLE", "STA_PACK_QUERIES", "STA_TEXT_VALID"] {
                    #expect(!text.contains(retired), "\(name) still mentions \(retired)")
                }
            }
            #expect(source.text.contains("#include \"sta_common.cuh\""))
            #expect(source.headers.contains { $0.name == "sta_common.cuh" })
        }
    }
}

@Suite(.enabled(if: nvrtcAvailable, "NVRTC is not installed"))
struct KernelShapeCompileTests {
    /// Each kernel without one of its shape definitions: a compile error that names the definition.
    @Test(arguments: [
        ("portable", "STA_BLOCK_N"), ("portable", "STA_THREADS"), ("portable", "STA_SHARED_BYTES"),
        ("hopper", "STA_STAGES"), ("hopper", "STA_BLOCK_N"), ("hopper", "STA_KEY_SLICES"), ("backward", "STA_DKV_CHUNK"),
        ("backward", "STA_THREADS"),
    ])
    func aMissingShapeDefinitionIsACompileErrorNamingIt(kernel: String, definition: String) throws {
        let plan = try AttentionPlan(
            layout: STALayout(canvas: [16, 16], tile: [8, 8], textCount: 8), window: Window(tiles: [1, 1]), heads: 1)
        let (source, options): (KernelSource, [String])
        switch kernel {
        case "portable":
            (source, options) = (STAForwardKernel.kernelSource, STAForwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80"))
        case "hopper":
            (source, options) = (STAForwardHopperKernel.kernelSource, STAForwardHopperKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16))
        default:
            (source, options) = (STABackwardKernel.kernelSource, STABackwardKernel.compileOptions(plan: plan, headDim: 64, dtype: .bfloat16, architecture: "sm_80"))
        }
        let compiler = try NVRTCCompiler.load()
        _ = try source.compile(with: compiler, options: options)   // complete: compiles
        do {
            _ = try source.compile(with: compiler, options: options.filter { !$0.hasPrefix("-D\(definition)=") })
            Issue.record("\(kernel) compiled without \(definition)")
        } catch {
            #expect(error.description.contains(definition), "\(error)")
        }
    }
}
