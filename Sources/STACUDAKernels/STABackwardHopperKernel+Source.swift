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
        /// How much of each chunk's LSE and Δ the consumers read ahead of the waits that precede their use.
        public var statisticsAhead: StatisticsAhead

        /// What the consumers read from shared memory while a chunk's products run (`STA_BWD_STATS_AHEAD`).
        public enum StatisticsAhead: Int, Sendable {
            /// The first half of the LSE: 8 to 16 registers fewer live across the waits.
            case halfOfLSE = 1
            /// All of the LSE and Δ: the faster loop where the registers allow it.
            case lseAndDelta = 2
        }

        /// The preferred shape for `headDim`: `candidates(headDim:)`'s first.
        public static func choose(headDim: Int) -> Shape { candidates(headDim: headDim)[0] }

        /// The shapes the launcher tries for `headDim`, best first: it takes the first whose compile has no
        /// local memory (stack or spills), else the last. They differ only in `statisticsAhead`: all of the
        /// statistics ahead, then half of the LSE.
        public static func candidates(headDim: Int) -> [Shape] {
            [.lseAndDelta, .halfOfLSE].map { ahead in
                Shape(
                    threads: STABackwardHopperKernel.threadsPerBlock, blockKeys: STABackwardHopperKernel.blockKeys,
                    queriesPerChunk: STABackwardHopperKernel.queriesPerChunk,
                    stages: STABackwardHopperKernel.stages(headDim: headDim),
                    sharedMemoryBytes: STABackwardHopperKernel.sharedMemoryBytes(headDim: headDim),
                    statisticsAhead: ahead)
            }
        }

        /// The `-D` definitions the kernels require.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_BWD_BLOCK_N=\(blockKeys)", "-DSTA_BWD_CHUNK=\(queriesPerChunk)",
                "-DSTA_BWD_STAGES=\(stages)", "-DSTA_BWD_SHARED_BYTES=\(sharedMemoryBytes)",
                "-DSTA_BWD_STATS_AHEAD=\(statisticsAhead.rawValue)",
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
    /// constants every kernel shares (`specialisationOptions`) for sm_90a and the preferred block shape
    /// (`Shape.choose`). Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [String] {
        candidateOptions(plan: plan, headDim: headDim, dtype: dtype)[0].options
    }

    /// Every shape of `Shape.candidates(headDim:)` with its NVRTC options, best first; `init` takes the
    /// first whose main kernel compiles without local memory.
    public static func candidateOptions(plan: AttentionPlan, headDim: Int, dtype: DType) -> [(shape: Shape, options: [String])] {
        let problem = specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
        return Shape.candidates(headDim: headDim).map { ($0, problem + $0.definitions) }
    }
}
