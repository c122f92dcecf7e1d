import STAGeometry
import STATensors

extension STABackwardKernel {
    /// The block shapes NVRTC compiles the three kernels for; Swift chooses them, the kernels have no
    /// defaults.
    public struct Shape: Sendable, Equatable {
        /// Threads per block of every kernel (16 rows per warp in the two main kernels).
        public var threads: Int
        /// Key rows per block of the dK/dV kernel.
        public var blockKeys: Int
        /// Query rows per chunk of the dK/dV kernel's inner loop.
        public var queriesPerChunk: Int
        /// Query rows per block of the dQ kernel.
        public var blockQueries: Int
        /// Keys per chunk of the dQ kernel's inner loop.
        public var keysPerChunk: Int
        /// Dynamic shared memory of the dK/dV kernel and of the dQ kernel.
        public var keysSharedMemoryBytes: Int
        public var queriesSharedMemoryBytes: Int

        /// The shapes for `headDim`.
        public static func choose(headDim: Int) -> Shape {
            Shape(
                threads: STABackwardKernel.threadsPerBlock, blockKeys: STABackwardKernel.blockKeys,
                queriesPerChunk: STABackwardKernel.queriesPerChunk(headDim: headDim),
                blockQueries: STABackwardKernel.blockQueries, keysPerChunk: STABackwardKernel.blockKeysPerChunk,
                keysSharedMemoryBytes: STABackwardKernel.keysSharedMemoryBytes(headDim: headDim),
                queriesSharedMemoryBytes: STABackwardKernel.queriesSharedMemoryBytes(headDim: headDim))
        }

        /// The `-D` definitions the kernels require.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_DKV_BLOCK_KEYS=\(blockKeys)", "-DSTA_DKV_CHUNK=\(queriesPerChunk)",
                "-DSTA_DQ_BLOCK_M=\(blockQueries)", "-DSTA_DQ_CHUNK=\(keysPerChunk)",
                "-DSTA_DKV_SHARED_BYTES=\(keysSharedMemoryBytes)", "-DSTA_DQ_SHARED_BYTES=\(queriesSharedMemoryBytes)",
            ]
        }
    }

    /// The file name NVRTC compiles the kernels under (appears in its diagnostics).
    public static var sourceName: String { "sta_backward_sm80.cu" }

    /// The main file's CUDA C++ text (`Kernels/sta_backward_sm80.cu`); it includes `kernelSource.headers`.
    public static var source: String { embedded("sta_backward_sm80.cu", PackageResources.sta_backward_sm80_cu) }

    /// The translation unit NVRTC compiles: `sta_backward_sm80.cu` with `sta_common.cuh` and `sta_sm80.cuh`
    /// (shared with the portable forward kernel).
    public static var kernelSource: KernelSource {
        KernelSource(name: sourceName, text: source, headers: [.common, .sm80])
    }

    /// The NVRTC options that specialise the kernels for `plan`, `headDim` and `dtype` on `architecture`
    /// (e.g. "sm_90a"): the problem constants of the forward kernels (`specialisationOptions`) and the
    /// block shapes (`Shape.choose`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
            + Shape.choose(headDim: headDim).definitions
    }
}
