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

    @Test func persistentCTAsTakesPositiveIntegersOnly() {
        func value(_ text: String?) -> Int? {
            KernelDevelopment.persistentCTAs(environment: { $0 == "STA_PERSISTENT_CTAS" ? text : nil })
        }
        #expect(value("3") == 3)
        #expect(value("132") == 132)
        #expect(value(nil) == nil)
        #expect(value("0") == nil)
        #expect(value("-2") == nil)
        #expect(value("three") == nil)
        #expect(value("") == nil)
    }
}
