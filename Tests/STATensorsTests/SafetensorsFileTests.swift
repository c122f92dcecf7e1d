import Testing
@testable import STATensors

@Suite struct SafetensorsFileTests {
    /// A `.safetensors` file assembled by hand from header text and data.
    private func file(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
        let text = Array(header.utf8)
        return littleEndianBytes(declaredLength ?? UInt64(text.count)) + text + data
    }

    private func problem(_ bytes: [UInt8]) -> SafetensorsProblem? {
        do {
            _ = try SafetensorsFile(bytes: bytes, name: "test.safetensors")
            return nil
        } catch {
            return safetensorsProblem(error)
        }
    }

    @Test func roundTripsEveryDtype() throws {
        let samples = try sampleTensors()
        var tensors = [String: HostTensor]()
        for (dtype, tensor) in samples { tensors["t.\(dtype)"] = tensor }
        tensors["scalar"] = try HostTensor(shape: [], values: [Float(7)])
        tensors["empty"] = try HostTensor(shape: [0, 3], values: [Float16]())
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t é"]

        let bytes = try SafetensorsFile.encode(tensors, metadata: metadata)
        let directory = try makeTemporaryDirectory()
        let path = "\(directory)/all.safetensors"
        try SafetensorsFile.write(tensors, metadata: metadata, to: path)
        for file in [try SafetensorsFile(bytes: bytes), try SafetensorsFile(path: path)] {
            #expect(file.tensorNames == tensors.keys.sorted())
            #expect(file.metadata == metadata)
            for (name, tensor) in tensors {
                #expect(try file.tensor(name) == tensor, "tensor \(name)")
                let info = try file.info(name)
                #expect(info.dtype == tensor.dtype && info.shape == tensor.shape)
                #expect(info.fileByteRange.count == tensor.bytes.count)
                let viewed = try file.withUnsafeBytes(of: name) { Array($0) }
                #expect(viewed == tensor.bytes)
            }
        }
    }

    @Test func layoutMatchesWhatPythonWrites() throws {
        let tensors = [
            "b": try HostTensor(shape: [3], values: [Float16(1), 2, 3]),
            "a": try HostTensor(shape: [1, 2], values: [Float(1), 2]),
        ]
        let bytes = try SafetensorsFile.encode(tensors)
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
        #expect(bytes.count == 8 + headerLength + 8 + 6)
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        let expected = #"{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}"#
        #expect(header == expected + String(repeating: " ", count: headerLength - expected.utf8.count))
    }

    @Test func readsAnyValidLayout() throws {
        // Tensors out of order, a gap, whitespace, escaped names and an unknown extra field are all fine.
        let header = #"""
            { "z\u00e9" : {"dtype": "I16", "shape": [2], "data_offsets": [8, 12], "extra": null},
              "a": {"data_offsets": [0, 4], "shape": [], "dtype": "F32"} }
            """#
        let data = littleEndianBytes(Float(2.5).bitPattern) + [9, 9, 9, 9] + littleEndianBytes(Int16(-3)) + littleEndianBytes(Int16(4))
        let file = try SafetensorsFile(bytes: self.file(header: header, data: data))
        #expect(file.tensorNames == ["a", "zé"])
        #expect(try file.tensor("a").floats() == [2.5])
        #expect(try file.tensor("zé").values(as: Int16.self) == [-3, 4])
    }

    @Test func rejectsMalformedFiles() throws {
        let data = [UInt8](repeating: 0, count: 8)
        let good = #"{"q": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#
        #expect(problem(file(header: good, data: data)) == nil)
        #expect(problem([1, 2, 3]) == .fileTooShort(fileSize: 3))
        #expect(problem(file(header: good, data: data, declaredLength: 1000))
            == .headerLengthOutOfRange(headerLength: 1000, fileSize: 8 + good.utf8.count + 8))
        #expect(problem(file(header: good, data: data, declaredLength: UInt64.max))
            == .headerLengthOutOfRange(headerLength: .max, fileSize: 8 + good.utf8.count + 8))
        let fileSize = 8 + good.utf8.count + 6
        let start = UInt64(8 + good.utf8.count)
        #expect(problem(file(header: good, data: Array(data.prefix(6))))
            == .offsetsOutOfRange(tensor: "q", begin: start, end: start + 8, fileSize: fileSize))
        #expect(problem(file(header: #"{"q": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}"#, data: data))
            == .unknownDType(tensor: "q", dtype: "F8_E4M3"))
        #expect(problem(file(header: #"{"q": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: data))
            == .byteCountMismatch(tensor: "q", expected: 12, actual: 8))
        let overlapping = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "I16", "shape": [2], "data_offsets": [4, 8]}}"#
        #expect(problem(file(header: overlapping, data: data)) == .overlappingTensors("a", "b"))
        for broken in [
            #"{"q": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#,
            #"{"q": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "q": {}}"#,
            #"[1, 2]"#,
            #"{"__metadata__": {"k": 1}}"#,
            #"{"q": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8],}}"#,
            "{\"q\u{1}\": {}}",
        ] {
            guard case .invalidHeader? = problem(file(header: broken, data: data)) else {
                Issue.record("accepted or misreported: \(broken)")
                continue
            }
        }
        for broken in [
            #"{"q": {"shape": [2], "data_offsets": [0, 8]}}"#,
            #"{"q": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#,
            #"{"q": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}"#,
            #"{"q": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}"#,
            #"{"q": [1]}"#,
        ] {
            guard case .invalidEntry(tensor: "q", _)? = problem(file(header: broken, data: data)) else {
                Issue.record("accepted or misreported: \(broken)")
                continue
            }
        }
        let reversed = #"{"q": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}"#
        guard case .offsetsOutOfRange(tensor: "q", _, _, _)? = problem(file(header: reversed, data: data)) else {
            Issue.record("reversed offsets accepted")
            return
        }
    }

    @Test func truncationMessageNamesFileAndBytes() throws {
        let tensors = ["q": try HostTensor(shape: [4], values: [Float](repeating: 1, count: 4))]
        let bytes = try SafetensorsFile.encode(tensors)
        let directory = try makeTemporaryDirectory()
        let path = "\(directory)/cut.safetensors"
        try SafetensorsFile.write(tensors, to: path)
        // Rewrite the file without its last 4 bytes.
        try RawFile.write(Array(bytes.dropLast(4)), to: path)
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("truncated file accepted")
        } catch {
            let headerEnd = bytes.count - 16
            #expect(String(describing: error) == "file '\(path)' is \(bytes.count - 4) bytes but tensor 'q' needs bytes \(headerEnd)..<\(headerEnd + 16); the file is truncated")
        }
    }

    @Test func lookupAndWriterErrors() throws {
        let file = try SafetensorsFile(bytes: SafetensorsFile.encode([:]))
        #expect(file.tensorNames.isEmpty)
        #expect(throws: TensorError.safetensors(path: "<memory>", problem: .noSuchTensor("w"))) { try file.tensor("w") }
        let tensor = try HostTensor(shape: [1], values: [Float(1)])
        #expect(throws: TensorError.safetensors(path: "<memory>", problem: .invalidTensorName("__metadata__"))) {
            try SafetensorsFile.encode(["__metadata__": tensor])
        }
        #expect(throws: TensorError.self) { try SafetensorsFile(path: "/nonexistent/dir/x.safetensors") }
    }
}

/// Writes raw bytes to a file through the library's writer (tests only).
enum RawFile {
    static func write(_ bytes: [UInt8], to path: String) throws {
        let writer = try FileWriter(creating: path)
        try writer.write(bytes)
        try writer.close()
    }
}
