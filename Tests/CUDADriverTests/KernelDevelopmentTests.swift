import Testing

@testable import CUDADriver

@Suite struct KernelDevelopmentTests {
    @Test func aFileInTheDirectoryReplacesTheEmbeddedTextAndNothingElseDoes() {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        writeFile(directory + "/k.cu", Array("__global__ void k() {}\n".utf8))
        let set: (String) -> String? = { $0 == "STA_KERNEL_SOURCES" ? directory : nil }
        #expect(KernelDevelopment.source(named: "k.cu", environment: set) == "__global__ void k() {}\n")
        // A name the directory lacks, a path instead of a name, and an unset variable: no override.
        #expect(KernelDevelopment.source(named: "other.cuh", environment: set) == nil)
        #expect(KernelDevelopment.source(named: "../k.cu", environment: set) == nil)
        #expect(KernelDevelopment.source(named: "k.cu", environment: { _ in nil }) == nil)
    }
}
