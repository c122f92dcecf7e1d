import CUDADriver
import STAGeometry
import STATensors

extension STAForwardKernel {
    /// The block shape NVRTC compiles the kernel for; Swift chooses it, the kernel has no defaults.
    ///
    /// Two families. *Row pairs*: 4 warps of 32 query rows (two m16 row blocks sharing every K and V fragment
    /// a warp loads, which halves the shared-memory reads of P·V and cuts those of Q·Kᵀ by a quarter), Q
    /// re-read from shared memory, two blocks per SM within 255 registers. *Row blocks*: 8 warps of 16 rows,
    /// Q held in registers at head dim 128 — fewer registers per thread, more shared-memory reads per MMA.
    /// Both give 128 query rows per block, so the grid does not depend on the shape.
    public struct Shape: Sendable, Equatable, CustomStringConvertible {
        /// Threads per block.
        public var threads: Int
        /// Query rows per warp: 16 (one m16 row block) or 32 (two).
        public var rowsPerWarp: Int
        /// Query rows per block: rowsPerWarp · threads / 32.
        public var blockQueries: Int
        /// Keys per chunk: one shared-memory buffer (K and V double-buffered), one barrier.
        public var blockKeys: Int
        /// Keys per register step inside a chunk (S = Q·Kᵀ, softmax, O += P·V over this many at a time);
        /// divides `blockKeys`. Fewer than `blockKeys` keeps the score registers of a step small.
        public var stepKeys: Int
        /// Blocks per SM `__launch_bounds__` asks for (2: at most 255 registers at 128 threads, 128 at 256).
        public var minBlocksPerSM: Int
        /// Q fragments held in registers (row blocks at D 128), or re-read from shared memory.
        public var queriesInRegisters: Bool
        /// Dynamic shared memory per block: the Q tile plus double-buffered K and V chunks.
        public var sharedMemoryBytes: Int

        /// 4 warps of 32 rows, chunks of `blockKeys` keys computed `stepKeys` at a time, two blocks per SM.
        public static func rowPairs(headDim: Int, blockKeys: Int, stepKeys: Int) -> Shape {
            Shape(
                threads: 128, rowsPerWarp: 32, blockQueries: STAForwardKernel.blockQueries, blockKeys: blockKeys,
                stepKeys: stepKeys, minBlocksPerSM: 2, queriesInRegisters: false,
                sharedMemoryBytes: (STAForwardKernel.blockQueries + 4 * blockKeys) * headDim * 2)
        }

        /// 8 warps of 16 rows, 64-key chunks in one step; Q in registers at D 128.
        public static func rowBlocks(headDim: Int, minBlocksPerSM: Int) -> Shape {
            Shape(
                threads: 256, rowsPerWarp: 16, blockQueries: STAForwardKernel.blockQueries, blockKeys: 64, stepKeys: 64,
                minBlocksPerSM: minBlocksPerSM, queriesInRegisters: headDim == 128,
                sharedMemoryBytes: (STAForwardKernel.blockQueries + 4 * 64) * headDim * 2)
        }

        /// The shapes worth trying for `headDim` on a device whose opt-in shared memory per block is
        /// `sharedMemoryPerBlock` (`CUDAContext.maxSharedMemoryPerBlockOptin`), best first; the kernel takes
        /// the first whose compile does not spill (`STAForwardKernel.init`), and the last always serves.
        ///
        /// D 128: row pairs when two such blocks fit an SM (the SM holds the opt-in limit plus 1 KiB, and
        /// each block reserves 1 KiB): with 64-key chunks in one step, then in two 32-key steps (fewer live
        /// score registers: the step that spills nowhere in the catalogue) — H100/H200; with 32-key chunks where
        /// only those fit twice (A100); then row blocks (one block of 8 warps per SM on 100 KiB parts).
        /// D 64: row blocks, two per SM within 128 registers, else one. `layout` is for future use; the
        /// choice does not depend on it today. Pure.
        public static func candidates(headDim: Int, layout: STALayout, sharedMemoryPerBlock: Int) -> [Shape] {
            guard headDim == 128 else {
                return [rowBlocks(headDim: headDim, minBlocksPerSM: 2), rowBlocks(headDim: headDim, minBlocksPerSM: 1)]
            }
            func twoFit(_ shape: Shape) -> Bool {
                2 * (shape.sharedMemoryBytes + 1024 + 1024) <= sharedMemoryPerBlock + 1024
            }
            var shapes = [Shape]()
            let wide = rowPairs(headDim: headDim, blockKeys: 64, stepKeys: 64)
            let narrow = rowPairs(headDim: headDim, blockKeys: 32, stepKeys: 32)
            if twoFit(wide) {
                shapes += [wide, rowPairs(headDim: headDim, blockKeys: 64, stepKeys: 32)]
            } else if twoFit(narrow) {
                shapes.append(narrow)
            }
            shapes.append(rowBlocks(headDim: headDim, minBlocksPerSM: 1))
            return shapes
        }

        /// The first of `candidates` (what a compile that does not spill gets).
        public static func choose(headDim: Int, layout: STALayout, sharedMemoryPerBlock: Int) -> Shape {
            candidates(headDim: headDim, layout: layout, sharedMemoryPerBlock: sharedMemoryPerBlock)[0]
        }

        /// The opt-in shared memory per block of a typical device of `architecture` ("sm_90a", "sm_80", …),
        /// for choosing shapes without a device (`sta kernels`): 232,448 bytes on sm_90/sm_100 (H100, H200,
        /// B200), 166,912 on sm_80/sm_87 (A100, Orin), else 101,376 (sm_86, sm_89, sm_120: RTX, L40).
        public static func typicalSharedMemoryPerBlock(architecture: String) -> Int {
            let digits = architecture.drop { !$0.isNumber }.prefix { $0.isNumber }
            switch Int(digits) ?? 0 {
            case 90, 100, 103: return 232_448
            case 80, 87: return 166_912
            default: return 101_376
            }
        }

        public var description: String {
            "\(threads / 32) warps × \(rowsPerWarp) rows, \(blockKeys)-key chunks in \(stepKeys)-key steps, "
                + "\(minBlocksPerSM) block(s)/SM, Q in \(queriesInRegisters ? "registers" : "shared memory"), "
                + "\(sharedMemoryBytes) B shared"
        }

        /// The `-D` definitions the kernel requires.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_ROWS_PER_WARP=\(rowsPerWarp)", "-DSTA_BLOCK_M=\(blockQueries)",
                "-DSTA_BLOCK_N=\(blockKeys)", "-DSTA_STEP_N=\(stepKeys)", "-DSTA_MIN_BLOCKS_PER_SM=\(minBlocksPerSM)",
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
    /// (e.g. "sm_90a"): the problem constants both kernels share (`specialisationOptions`) and the first
    /// candidate shape for a typical device of that architecture. Pure: `init` validates.
    public static func compileOptions(plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String)
        -> [String]
    {
        candidateOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)[0].options
    }

    /// Every candidate shape (`Shape.candidates`, best first) with its NVRTC options, for `plan`, `headDim`
    /// and `dtype` on `architecture`, on a device whose opt-in shared memory per block is
    /// `sharedMemoryPerBlock` (default: typical of the architecture). Pure.
    public static func candidateOptions(
        plan: AttentionPlan, headDim: Int, dtype: DType, architecture: String, sharedMemoryPerBlock: Int? = nil
    ) -> [(shape: Shape, options: [String])] {
        let problem = specialisationOptions(plan: plan, headDim: headDim, dtype: dtype, architecture: architecture)
        let shared = sharedMemoryPerBlock ?? Shape.typicalSharedMemoryPerBlock(architecture: architecture)
        return Shape.candidates(headDim: headDim, layout: plan.layout, sharedMemoryPerBlock: shared).map {
            ($0, problem + $0.definitions)
        }
    }
}

extension STAForwardKernel.Shape {
    /// A shape written as `ROWSxKEYSxSTEP` (e.g. `32x64x32`: rows per warp, keys per chunk, keys per step),
    /// for kernel development (`STA_PORTABLE_SHAPE`); nil unless rows is 16 or 32 and the keys are
    /// multiples of 32 with the step dividing the chunk (16 rows take the row-block shape's threads).
    public init?(development text: String, headDim: Int) {
        let parts = text.split(separator: "x").map { Int($0) }
        guard parts.count == 3, let rows = parts[0], let keys = parts[1], let step = parts[2],
            rows == 16 || rows == 32, keys >= 32, keys <= 128, keys % 32 == 0, step >= 16, step % 16 == 0,
            keys % step == 0
        else { return nil }
        if rows == 32 {
            self = .rowPairs(headDim: headDim, blockKeys: keys, stepKeys: step)
        } else {
            self = .rowBlocks(headDim: headDim, minBlocksPerSM: headDim == 64 ? 2 : 1)
            blockKeys = keys
            stepKeys = step
            sharedMemoryBytes = (blockQueries + 4 * keys) * headDim * 2
        }
    }
}
