import SlidingTileAttention
import STACUDAKernels
import STAGeometry
import STATensors

/// Every CUDA kernel specialisation the package uses: the suites' problems and the verification matrix,
/// for each kernel that runs on an architecture. `sta kernels` compiles them all (CI does, without a GPU).
public enum KernelCatalogue {
    /// One kernel source and how it is specialised for a problem.
    public struct Variant: Sendable {
        public let name: String
        /// The translation unit: main file and headers.
        public let kernelSource: KernelSource
        public var source: String { kernelSource.text }
        public var sourceName: String { kernelSource.name }
        public let options: @Sendable (_ plan: AttentionPlan, _ headDim: Int, _ dtype: DType, _ architecture: String) -> [String]
        /// The option sets the launcher may try for a problem, best first (it takes the first whose compile
        /// does not spill, else the last): `[options]` for a kernel with one shape.
        public let candidates: @Sendable (_ plan: AttentionPlan, _ headDim: Int, _ dtype: DType, _ architecture: String) -> [[String]]

        public init(
            name: String, kernelSource: KernelSource,
            options: @escaping @Sendable (_ plan: AttentionPlan, _ headDim: Int, _ dtype: DType, _ architecture: String) -> [String],
            candidates: (@Sendable (_ plan: AttentionPlan, _ headDim: Int, _ dtype: DType, _ architecture: String) -> [[String]])? = nil
        ) {
            self.name = name
            self.kernelSource = kernelSource
            self.options = options
            self.candidates = candidates ?? { [options($0, $1, $2, $3)] }
        }
    }

    /// The suites' problems and the verification cases, as problems.
    public static func problems() throws -> [AttentionProblem] {
        var problems = try BenchmarkSuite.allCases.flatMap { try $0.problems() }
        problems += try Verification.gpuCases()
        problems += try Verification.textRowsCases().map(\.problem)
        problems += try Verification.nanContractCases()
        problems += try Verification.largeInputCases()
        problems.append(try Demonstration.problem(dtype: .bfloat16))
        return problems
    }

    /// The kernels that run on `architecture`.
    public static func variants(for architecture: String) -> [Variant] {
        var variants = [
            Variant(
                name: "portable", kernelSource: STAForwardKernel.kernelSource,
                options: { STAForwardKernel.compileOptions(plan: $0, headDim: $1, dtype: $2, architecture: $3) },
                candidates: {
                    STAForwardKernel.candidateOptions(plan: $0, headDim: $1, dtype: $2, architecture: $3).map(\.options)
                })
        ]
        variants.append(Variant(
            name: "backward", kernelSource: STABackwardKernel.kernelSource,
            options: { STABackwardKernel.compileOptions(plan: $0, headDim: $1, dtype: $2, architecture: $3) }))
        variants.append(Variant(
            name: "exact-rows", kernelSource: STAExactRowsKernel.kernelSource,
            options: { STAExactRowsKernel.compileOptions(plan: $0, headDim: $1, dtype: $2, architecture: $3) }))
        if architecture == STAForwardHopperKernel.architecture {
            variants.append(Variant(
                name: "hopper", kernelSource: STAForwardHopperKernel.kernelSource,
                options: { plan, headDim, dtype, _ in STAForwardHopperKernel.compileOptions(plan: plan, headDim: headDim, dtype: dtype) }))
            variants.append(Variant(
                name: "hopper-backward", kernelSource: STABackwardHopperKernel.kernelSource,
                options: { plan, headDim, dtype, _ in
                    STABackwardHopperKernel.compileOptions(plan: plan, headDim: headDim, dtype: dtype)
                },
                candidates: { plan, headDim, dtype, _ in
                    STABackwardHopperKernel.candidateOptions(plan: plan, headDim: headDim, dtype: dtype).map(\.options)
                }))
        }
        return variants
    }
}
