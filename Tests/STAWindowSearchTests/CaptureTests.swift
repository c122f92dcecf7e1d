import STAGeometry
import STATensors
import Testing

@testable import STAWindowSearch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite struct CaptureTests {
    let layout: STALayout
    let shape: [Int]
    let zeros: HostTensor

    init() throws {
        layout = try smallLayout()
        shape = [1, 2, layout.sequenceLength, 4]
        zeros = try HostTensor(zeros: shape, dtype: .float32)
    }

    func open(_ tensors: [String: HostTensor], metadata: [String: String]) throws -> ActivationCapture {
        let bytes = try SafetensorsFile.encode(tensors, metadata: metadata)
        return try ActivationCapture(file: SafetensorsFile(bytes: bytes, name: "capture"), layout: layout)
    }

    var goodMetadata: [String: String] { ["step": "20", "layer": "7", "prompt": "cat"] }

    @Test func readsAValidCapture() throws {
        let bf16 = try HostTensor(zeros: shape, dtype: .bfloat16)
        let capture = try open(["q": zeros, "k": zeros, "v": bf16], metadata: goodMetadata)
        #expect(capture.step == 20 && capture.layer == 7 && capture.prompt == "cat")
        #expect(capture.batch == 1 && capture.heads == 2 && capture.headDim == 4)
        let (q, _, v) = try capture.tensors()
        #expect(q.count == zeros.elementCount && v.count == zeros.elementCount)
    }

    @Test func missingTensorsAreNamed() throws {
        #expect(throws: WindowSearchError.missingTensor(path: "capture", name: "v", present: ["k", "q"])) {
            try open(["q": zeros, "k": zeros], metadata: goodMetadata)
        }
        do {
            _ = try open(["query": zeros], metadata: goodMetadata)
            Issue.record("a capture without q was accepted")
        } catch {
            #expect("\(error)".contains("has no tensor 'q'"), "\(error)")
            #expect("\(error)".contains("query"), "\(error)")
        }
    }

    @Test func shapesMustMatchTheLayout() throws {
        let short = try HostTensor(zeros: [1, 2, layout.sequenceLength - 1, 4], dtype: .float32)
        #expect(throws: WindowSearchError.self) { try open(["q": short, "k": short, "v": short], metadata: goodMetadata) }
        do {
            _ = try open(["q": short, "k": short, "v": short], metadata: goodMetadata)
        } catch {
            #expect("\(error)".contains("[1, 2, 255, 4]") && "\(error)".contains("256"), "\(error)")
        }
        let threeAxes = try HostTensor(zeros: [2, layout.sequenceLength, 4], dtype: .float32)
        #expect(throws: WindowSearchError.shapeMismatch(
            path: "capture", name: "k", shape: [2, 256, 4], expected: "[B, H, 256, D] (S = sequence length of \(layout))"))
        {
            try open(["q": zeros, "k": threeAxes, "v": zeros], metadata: goodMetadata)
        }
        let otherHeads = try HostTensor(zeros: [1, 3, layout.sequenceLength, 4], dtype: .float32)
        #expect(throws: WindowSearchError.shapeMismatch(
            path: "capture", name: "v", shape: [1, 3, 256, 4], expected: "[1, 2, 256, 4], the shape of q"))
        {
            try open(["q": zeros, "k": zeros, "v": otherHeads], metadata: goodMetadata)
        }
        let integers = try HostTensor(zeros: shape, dtype: .int32)
        #expect(throws: WindowSearchError.notFloatingPoint(path: "capture", name: "q", dtype: .int32)) {
            try open(["q": integers, "k": zeros, "v": zeros], metadata: goodMetadata)
        }
    }

    @Test(arguments: [
        (["layer": "7", "prompt": "cat"], "step", nil),
        (["step": "x1", "layer": "7", "prompt": "cat"], "step", "x1"),
        (["step": "-3", "layer": "7", "prompt": "cat"], "step", "-3"),
        (["step": "3", "layer": "", "prompt": "cat"], "layer", ""),
        (["step": "3", "layer": "1.5", "prompt": "cat"], "layer", "1.5"),
        (["step": "3", "layer": "1"], "prompt", nil),
        (["step": "3", "layer": "1", "prompt": ""], "prompt", ""),
    ] as [([String: String], String, String?)])
    func badMetadataIsRejected(metadata: [String: String], key: String, value: String?) throws {
        #expect(throws: WindowSearchError.badMetadata(path: "capture", key: key, value: value)) {
            try open(["q": zeros, "k": zeros, "v": zeros], metadata: metadata)
        }
    }

    @Test func filesExpandsDirectoriesAndReadsFromDisk() throws {
        var template = Array("/tmp/sta-search-XXXXXX".utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        let bytes = try ActivationCapture.encode(q: zeros, k: zeros, v: zeros, step: 16, layer: 0, prompt: "0")
        for name in ["b.safetensors", "a.safetensors", "notes.txt"] {
            let file = try #require(fopen(directory + "/" + name, "wb"))
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
        let files = try ActivationCapture.files(in: [directory, directory + "/b.safetensors"])
        #expect(files == [directory + "/a.safetensors", directory + "/b.safetensors", directory + "/b.safetensors"])
        let capture = try ActivationCapture(path: files[0], layout: layout)
        #expect(capture.step == 16 && capture.path == files[0])

        #expect(throws: WindowSearchError.self) { try ActivationCapture.files(in: [directory + "/missing"]) }
        let empty = directory + "/empty"
        mkdir(empty, 0o755)
        #expect(throws: WindowSearchError.emptyDirectory(path: empty)) { try ActivationCapture.files(in: [empty]) }
        for name in ["a.safetensors", "b.safetensors", "notes.txt"] { unlink(directory + "/" + name) }
        rmdir(empty)
        rmdir(directory)
    }
}
