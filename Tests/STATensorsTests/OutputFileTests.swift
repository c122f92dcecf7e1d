import Foundation
import Testing

@testable import STATensors

#if canImport(Glibc)
    import Glibc
#endif

private func contents(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map { Array($0) }
}

private func entries(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// Writers replace their output atomically and refuse to overwrite an input.
@Suite struct OutputFileTests {
    @Test func anInterruptedWriteLeavesTheOldFileAndNoTemporary() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/out.png"
        try OutputFile.write([1, 2, 3], to: path)
        #expect(contents(path) == [1, 2, 3])
        do {
            // Half of a new file written, then the writer is dropped without closing (what an error
            // part-way through, or a killed process, amounts to).
            let writer = try FileWriter(creating: path)
            try writer.write([9, 9, 9, 9, 9])
            #expect(contents(path) == [1, 2, 3], "the old file must stay whole while the new one is written")
        }
        #expect(contents(path) == [1, 2, 3])
        #expect(entries(directory) == ["out.png"], "no temporary file may be left behind")
        try OutputFile.write(text: "new\n", to: path)
        #expect(contents(path) == Array("new\n".utf8))
        #expect(entries(directory) == ["out.png"])
    }

    @Test func tensorFilesAreWrittenAtomicallyToo() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.safetensors"
        let tensor = try HostTensor(shape: [2], values: [Float(1), 2])
        try SafetensorsFile.write(["q": tensor], to: path)
        let before = contents(path)
        // An invalid name fails before anything is written: the old file stays.
        #expect(throws: TensorError.self) { try SafetensorsFile.write(["": tensor], to: path) }
        #expect(contents(path) == before)
        try NumpyFile.write(tensor, to: directory + "/t.npy")
        #expect(try NumpyFile.read(path: directory + "/t.npy") == tensor)
        #expect(entries(directory) == ["t.npy", "t.safetensors"])
    }

    @Test func anOutputThatIsAnInputIsRefused() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = directory + "/capture.safetensors"
        try OutputFile.write([7], to: input)
        #expect(throws: OutputFile.Problem.sameAsInput(output: input, input: input)) {
            try OutputFile.validate(input, inputs: [input])
        }
        // Another spelling of the same file, and a symbolic link to it.
        let spelled = directory + "/./capture.safetensors"
        #expect(throws: OutputFile.Problem.self) { try OutputFile.validate(spelled, inputs: [input]) }
        let link = directory + "/link.json"
        #expect(symlink(input, link) == 0)
        #expect(throws: OutputFile.Problem.self) { try OutputFile.validate(link, inputs: [input]) }
        // A hard link is the same file too.
        let hard = directory + "/hard.json"
        #expect(Glibc.link(input, hard) == 0)
        #expect(throws: OutputFile.Problem.self) { try OutputFile.validate(hard, inputs: [input]) }
        // A different file is fine, as is an output that does not exist yet.
        try OutputFile.validate(directory + "/strategy.json", inputs: [input])
        #expect(contents(input) == [7])
    }

    @Test func outputPathsAreCheckedBeforeWork() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = directory + "/no-such-directory/out.json"
        let error = try #require(throws: OutputFile.Problem.self) { try OutputFile.validate(missing) }
        #expect(error.description.contains("does not exist"))
        #expect(throws: OutputFile.Problem.isDirectory(directory)) { try OutputFile.validate(directory) }
        #expect(throws: OutputFile.Problem.emptyPath) { try OutputFile.validate("") }
        try OutputFile.validate(directory + "/fine.json")
        // Devices are written in place and need no writable directory.
        try OutputFile.validate("/dev/null")
        try OutputFile.write([1, 2], to: "/dev/null")
        if getuid() != 0 {  // root may write anywhere
            let locked = directory + "/locked"
            try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
            chmod(locked, 0o555)
            defer { chmod(locked, 0o755) }
            #expect(throws: OutputFile.Problem.directoryNotWritable(output: locked + "/x", directory: locked)) {
                try OutputFile.validate(locked + "/x")
            }
        }
    }

    @Test func writingThroughALinkReplacesTheTarget() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = directory + "/target.json"
        let link = directory + "/link.json"
        try OutputFile.write([1], to: target)
        #expect(symlink(target, link) == 0)
        try OutputFile.write([2, 2], to: link)
        #expect(contents(target) == [2, 2])
        var status = stat()
        #expect(lstat(link, &status) == 0 && (status.st_mode & S_IFMT) == S_IFLNK, "the link stays a link")
    }
}
