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
        /// T-slices per packed key chunk of the tiles padded along H alone (`keySlices(layout:blockKeys:)`),
        /// 0 for none.
        public var keySlices: Int

        /// The shape for `headDim` and `layout`.
        public static func choose(headDim: Int, layout: STALayout) -> Shape {
            let blockKeys = STAForwardHopperKernel.blockKeys(headDim: headDim, tileVolume: layout.tileVolume)
            return Shape(
                threads: STAForwardHopperKernel.threadsPerBlock, blockQueries: STAForwardHopperKernel.blockQueries,
                blockKeys: blockKeys, stages: STAForwardHopperKernel.stages(headDim: headDim),
                sharedMemoryBytes: STAForwardHopperKernel.sharedMemoryBytes(headDim: headDim),
                keySlices: keySlices(layout: layout, blockKeys: blockKeys))
        }

        /// T-slices per packed key chunk for a 3D `layout` padded along H, else 0. In a tile padded along H
        /// alone each t-slice (tile H · tile W positions) starts with `sliceKeys(layout:)` real keys and ends
        /// in holes; the kernel loads such a tile as chunks of k slices' real keys (one 4D TMA box). k is
        /// the largest divisor of the tile's T extent whose chunk holds a multiple of 16 keys, at most
        /// `blockKeys`; packing is chosen only when it issues at most three quarters of the keys that
        /// whole `blockKeys` chunks would (wan's 6×8×8 tiles on 45 rows: 3 chunks of 80 keys for 2 of 192).
        public static func keySlices(layout: STALayout, blockKeys: Int) -> Int {
            let tile = layout.tile.extents
            guard tile.count == 3, layout.canvas.extents[1] % tile[1] != 0 else { return 0 }
            let sliceKeys = sliceKeys(layout: layout)
            guard sliceKeys <= STAForwardHopperKernel.boxRows * 4 else { return 0 }  // a TMA box dimension: ≤ 256
            let unpacked = (layout.tileVolume + blockKeys - 1) / blockKeys * blockKeys
            for slices in stride(from: tile[0], through: 1, by: -1) where tile[0] % slices == 0 {
                let keys = slices * sliceKeys
                guard keys <= blockKeys, keys % 16 == 0 else { continue }
                return 4 * tile[0] * sliceKeys <= 3 * unpacked ? slices : 0
            }
            return 0
        }

        /// Real keys per t-slice of a tile padded along H (the real rows along H times the tile's W extent)
        /// in a 3D `layout`.
        static func sliceKeys(layout: STALayout) -> Int {
            let tile = layout.tile.extents
            let realH = layout.canvas.extents[1] - (layout.tileGrid[1] - 1) * tile[1]
            return realH * tile[2]
        }

        /// The `-D` definitions the kernel requires.
        public var definitions: [String] {
            [
                "-DSTA_THREADS=\(threads)", "-DSTA_BLOCK_M=\(blockQueries)", "-DSTA_BLOCK_N=\(blockKeys)",
                "-DSTA_STAGES=\(stages)", "-DSTA_SHARED_BYTES=\(sharedMemoryBytes)", "-DSTA_KEY_SLICES=\(keySlices)",
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
