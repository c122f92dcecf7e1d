import STAGeometry
import STATensors

extension STAForwardKernel {
    /// The block shape NVRTC compiles the kernel for; Swift chooses it, the kernel has no defaults.
    public struct Shape: Sendable, Equatable {
        /// Threads per block.
        public var threads: Int
        /// Query rows per warp: 16 (one m16 row block) or 32 (two, sharing every K and V fragment, which
        /// halves the shared-memory reads of P·V and cuts those of Q·Kᵀ by a quarter).
        public var rowsPerWarp: Int
        /// Query rows per block: rowsPerWarp · threads / 32.
        public var blockQueries: Int
        /// Keys per chunk of the inner loop.
        public var blockKeys: Int
        /// Blocks per SM `__launch_bounds__` asks for: 2 at head dim 64 without holes (at most 128
        /// registers), else 1 (a padded canvas at D 64 needs the hole arithmetic on top and spilled under the
        /// 128-register cap).
        public var minBlocksPerSM: Int
        /// Q fragments held in registers (D 128), or re-read from shared memory (D 64, to fit 128 registers;
        /// with two row blocks per warp, to fit 255).
        public var queriesInRegisters: Bool
        /// Dynamic shared memory per block: the Q tile plus double-buffered K and V chunks.
        public var sharedMemoryBytes: Int

        /// The shape for `headDim` on `layout`: 8 warps of 16 rows, 128 query rows per block, chunks of 64 keys;
        /// Q fragments in registers at D 128. (Two row blocks per warp at D 128 — 4 warps of 32 rows, 32-key
        /// chunks — measured 4–8 % faster on the hunyuan suite but spills on the image layouts; the kernel
        /// keeps the option, `rowsPerWarp` 32.)
        public static func choose(headDim: Int, layout: STALayout) -> Shape {
            Shape(
                threads: 256, rowsPerWarp: 16,
                blockQueries: STAForwardKernel.blockQueries, blockKeys: STAForwardKernel.blockKeys(headDim: headDim),
                minBlocksPerSM: headDim == 64 && !layout.hasHoles ? 2 : 1, queriesInRegisters: headDim == 128,
                sharedMemoryBytes: STAForwardKernel.sharedMemoryBytes(headDim: headDim))
        }

        /// The `-D` definitions the kernel requires.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_ROWS_PER_WARP=\(rowsPerWarp)", "-DSTA_BLOCK_M=\(blockQueries)",
                "-DSTA_BLOCK_N=\(blockKeys)", "-DSTA_MIN_BLOCKS_PER_SM=\(minBlocksPerSM)",
                "-DSTA_Q_IN_REGISTERS=\(queriesInRegisters ? 1 : 0)", "-DSTA_SHARED_BYTES=\(sharedMemoryBytes)",
            ]
        }
    }

    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm80.cu" }

    /// The main file's CUDA C++ text (`Kernels/sta_forward_sm80.cu`); it includes `kernelSource.headers`.
    public static var source: String { embedded("sta_forward_sm80.cu", PackageResources.sta_forward_sm80_cu) }

    /// The translation unit NVRTC compiles: `sta_forward_sm80.cu` with `sta_common.cuh` and `sta_sm80.cuh`.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: source, headers: [.common, .sm80])
    }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the problem constants both kernels share (`specialisationOptions`) and the block
    /// shape (`Shape.choose`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + Shape.choose(headDim: headDim, layout: plan.layout).definitions
    }
}
