import Testing

@testable import STACommand

/// The shape column of `sta kernels`: which compile candidate each specialisation takes.
@Suite struct KernelsCommandTests {
    @Test func shapeLabelNamesPortableShapesAndFallbackCandidates() {
        let portable = ["--gpu-architecture=sm_90a", "-DSTA_ROWS_PER_WARP=32", "-DSTA_BLOCK_N=64", "-DSTA_STEP_N=16"]
        #expect(Kernels.shapeLabel(portable, choice: 0) == "32×64/16")
        #expect(Kernels.shapeLabel(portable, choice: 1) == "32×64/16 #2")
        // Kernels without a portable shape (the Hopper backward's statistics read-ahead candidates).
        let backward = ["--gpu-architecture=sm_90a", "-DSTA_BWD_STATS_AHEAD=1"]
        #expect(Kernels.shapeLabel(backward, choice: 0) == "-")
        #expect(Kernels.shapeLabel(backward, choice: 1) == "#2")
    }
}
