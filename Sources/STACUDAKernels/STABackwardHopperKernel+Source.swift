import STAGeometry
import STATensors

extension STABackwardHopperKernel {
    /// The block shape NVRTC compiles the kernels for; Swift chooses it, the kernels have no defaults.
    public struct Shape: Sendable, Equatable {
        /// Threads per block of the main kernel: one producer and two consumer warpgroups.
        public var threads: Int
        /// Key rows per block (64 per consumer warpgroup).
        public var blockKeys: Int
        /// Query rows per chunk of the main loop.
        public var queriesPerChunk: Int
        /// Q/dO ring stages in shared memory.
        public var stages: Int
        /// Dynamic shared memory of the main kernel.
        public var sharedMemoryBytes: Int

        /// The shape for `headDim`.
        public static func choose(headDim: Int) -> Shape {
            Shape(
                threads: STABackwardHopperKernel.threadsPerBlock, blockKeys: STABackwardHopperKernel.blockKeys,
                queriesPerChunk: STABackwardHopperKernel.queriesPerChunk,
                stages: STABackwardHopperKernel.stages(headDim: headDim),
                sharedMemoryBytes: STABackwardHopperKernel.sharedMemoryBytes(headDim: headDim))
        }

        /// The `-D` definitions the kernels require.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_BWD_BLOCK_N=\(blockKeys)", "-DSTA_BWD_CHUNK=\(queriesPerChunk)",
                "-DSTA_BWD_STAGES=\(stages)", "-DSTA_BWD_SHARED_BYTES=\(sharedMemoryBytes)",
            ]
        }
    }

    /// The file name NVRTC compiles the kernels under (appears in its diagnostics).
    public static var sourceName: String { "sta_backward_sm90.cu" }

    /// The main file's CUDA C++ text (`Kernels/sta_backward_sm90.cu`); it includes `kernelSource.headers`.
    public static var source: String { embedded("sta_backward_sm90.cu", PackageResources.sta_backward_sm90_cu) }

    /// The translation unit NVRTC compiles: `sta_backward_sm90.cu` with `sta_common.cuh`, the PTX wrappers
    /// it shares with the forward kernel and the `sta_sm90_bwd_*.cuh` headers.
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: source, headers: [.common] + KernelSource.Header.sm90Backward)
    }

    /// The NVRTC options that specialise the kernels for `plan`, `headDim` and `dtype`: the problem
    /// constants every kernel shares (`specialisationOptions`) for sm_90a and the block shape
    /// (`Shape.choose`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [String] {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + Shape.choose(headDim: headDim).definitions
    }
}
