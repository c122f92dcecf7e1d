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

    @Test func thePortableShapeFollowsHeadDimAndHoles() {
        let d64 = STAForwardKernel.Shape.choose(headDim: 64, layout: hunyuan.layout)
        #expect(d64.minBlocksPerSM == 2 && !d64.queriesInRegisters && d64.sharedMemoryBytes == 49_152)
        #expect(STAForwardKernel.Shape.choose(headDim: 64, layout: padded.layout).minBlocksPerSM == 1)
        let d128 = STAForwardKernel.Shape.choose(headDim: 128, layout: hunyuan.layout)
        #expect(d128.minBlocksPerSM == 1 && d128.queriesInRegisters && d128.sharedMemoryBytes == 98_304)
        #expect(d128.threads == 256 && d128.rowsPerWarp == 16 && d128.blockQueries == 128 && d128.blockKeys == 64)
        #expect(d64.threads == 256 && d64.rowsPerWarp == 16)
        let options = STAForwardKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_80")
        for definition in d128.definitions { #expect(options.contains(definition)) }
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
        let backward = STABackwardKernel.Shape.choose(headDim: 128)
        #expect(backward.queriesPerChunk == 32 && STABackwardKernel.Shape.choose(headDim: 64).queriesPerChunk == 64)
        #expect(backward.keysSharedMemoryBytes == 98_304 && backward.queriesSharedMemoryBytes == 131_072)
        let backwardOptions = STABackwardKernel.compileOptions(plan: hunyuan, headDim: 128, dtype: .bfloat16, architecture: "sm_80")
        for definition in backward.definitions { #expect(backwardOptions.contains(definition)) }
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
        ("hopper", "STA_STAGES"), ("hopper", "STA_BLOCK_N"), ("backward", "STA_DKV_CHUNK"), ("backward", "STA_THREADS"),
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
