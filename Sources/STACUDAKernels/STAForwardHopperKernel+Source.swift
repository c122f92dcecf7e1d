import STAGeometry
import STATensors

extension STAForwardHopperKernel {
    /// The block shape NVRTC compiles the kernel for; Swift chooses it, the kernel has no defaults.
    public struct Shape: Sendable, Equatable {
        /// Threads per block: one producer and two consumer warpgroups.
        public var threads: Int
        /// Query rows per block (64 per consumer warpgroup).
        public var blockQueries: Int
        /// Keys per chunk (one wgmma N).
        public var blockKeys: Int
        /// K/V ring stages in shared memory.
        public var stages: Int
        /// Dynamic shared memory per block.
        public var sharedMemoryBytes: Int

        /// The shape for `headDim` and the tile volume of `layout`.
        public static func choose(headDim: Int, layout: STALayout) -> Shape {
            Shape(
                threads: STAForwardHopperKernel.threadsPerBlock, blockQueries: STAForwardHopperKernel.blockQueries,
                blockKeys: STAForwardHopperKernel.blockKeys(headDim: headDim, tileVolume: layout.tileVolume),
                stages: STAForwardHopperKernel.stages(headDim: headDim),
                sharedMemoryBytes: STAForwardHopperKernel.sharedMemoryBytes(headDim: headDim))
        }

        /// The `-D` definitions the kernel requires.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_BLOCK_M=\(blockQueries)", "-DSTA_BLOCK_N=\(blockKeys)",
                "-DSTA_STAGES=\(stages)", "-DSTA_SHARED_BYTES=\(sharedMemoryBytes)",
            ]
        }
    }

    /// The file name NVRTC compiles the kernel under (appears in its diagnostics).
    public static var sourceName: String { "sta_forward_sm90.cu" }

    /// The main file's CUDA C++ text (`Kernels/sta_forward_sm90.cu`); it includes `kernelSource.headers`.
    public static var source: String { embedded("sta_forward_sm90.cu", PackageResources.sta_forward_sm90_cu) }

    /// The translation unit NVRTC compiles: `sta_forward_sm90.cu` with `sta_common.cuh` and the
    /// `sta_sm90_*.cuh` headers.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: source, headers: [.common] + KernelSource.Header.sm90)
    }

    /// The NVRTC options that specialise the kernel for `plan`, `headDim` and `dtype`: the problem
    /// constants both kernels share (`specialisationOptions`) for sm_90a (wgmma and setmaxnreg need the
    /// architecture-specific target) and the block shape (`Shape.choose`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [String] {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + Shape.choose(headDim: headDim, layout: plan.layout).definitions
    }
}
