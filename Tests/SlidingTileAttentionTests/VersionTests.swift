import SlidingTileAttention
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite struct VersionTests {
    /// The Python wheel's `__version__` (python/sta/_version.py) is the Swift package's version.
    @Test func swiftAndPythonVersionsAgree() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("python/sta/_version.py"), encoding: .utf8)
        let line = text.split(separator: "\n").first { $0.hasPrefix("__version__") }
        let quoted = line?.split(separator: "\"")
        #expect(quoted?.count == 2 || quoted?.count == 3, "no __version__ = \"x.y.z\" line in _version.py")
        #expect(quoted.map { String($0[1]) } == SlidingTileAttentionVersion.string)
    }

    @Test func theVersionIsSemantic() {
        let parts = SlidingTileAttentionVersion.string.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil })
    }
}
