import Testing
@testable import STATensors

@Suite struct NumpyFileTests {
    /// A `.npy` file assembled by hand: version, header text (padded by the caller) and data.
    private func npy(major: UInt8 = 1, header: String, data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
        let text = Array(header.utf8)
        if major == 1 {
            bytes += littleEndianBytes(UInt16(text.count))
        } else {
            bytes += littleEndianBytes(UInt32(text.count))
        }
        return bytes + text + data
    }

    private func problem(_ bytes: [UInt8]) -> NumpyProblem? {
        do {
            _ = try NumpyFile.decode(bytes, name: "test.npy")
            return nil
        } catch {
            return numpyProblem(error)
        }
    }

    @Test func roundTripsEveryDtypeButBFloat16() throws {
        let directory = try makeTemporaryDirectory()
        for shape in [[2, 3, 4], [5], [], [3, 0]] {
            for (dtype, tensor) in try sampleTensors(shape: shape) where dtype != .bfloat16 {
                let bytes = try NumpyFile.encode(tensor)
                #expect(try NumpyFile.decode(bytes) == tensor, "dtype \(dtype) shape \(shape)")
                let path = "\(directory)/\(dtype)-\(shape.count).npy"
                try NumpyFile.write(tensor, to: path)
                #expect(try NumpyFile.read(path: path) == tensor, "dtype \(dtype) shape \(shape)")
            }
        }
    }

    @Test func headerIsAlignedLikeNumpy() throws {
        let tensor = try HostTensor(shape: [2, 3], values: [Float](repeating: 1, count: 6))
        let bytes = try NumpyFile.encode(tensor)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect(bytes[6] == 1 && bytes[7] == 0)
        #expect((10 + headerLength) % 64 == 0)
        #expect(bytes[10 + headerLength - 1] == 0x0A)
        let text = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        #expect(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        #expect(bytes.count == 10 + headerLength + 24)
    }

    @Test func writesVersion2WhenTheHeaderNeedsIt() throws {
        // 25,000 axes of size 1 make a header longer than 65,535 bytes.
        let tensor = try HostTensor(shape: [Int](repeating: 1, count: 25_000), values: [Float(4)])
        let bytes = try NumpyFile.encode(tensor)
        #expect(bytes[6] == 2)
        let headerLength = bytes[8..<12].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect((12 + headerLength) % 64 == 0)
        #expect(try NumpyFile.decode(bytes) == tensor)
    }

    @Test func readsVersions2And3() throws {
        let data = littleEndianBytes(Int16(-2)) + littleEndianBytes(Int16(300))
        for major: UInt8 in [2, 3] {
            let bytes = npy(major: major, header: "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }    \n", data: data)
            let tensor = try NumpyFile.decode(bytes)
            #expect(try tensor.values(as: Int16.self) == [-2, 300])
        }
    }

    @Test func acceptsNumpyHeaderVariants() throws {
        // Key order, quotes, list shapes, native byte order and Python 2 long suffixes all occur in the wild.
        let header = "{\"shape\": [1L, 2], 'fortran_order': False, 'descr': '=f8'}\n"
        let data = littleEndianBytes(Double(1.5).bitPattern) + littleEndianBytes(Double(-2).bitPattern)
        let tensor = try NumpyFile.decode(npy(header: header, data: data))
        #expect(tensor.shape == [1, 2])
        #expect(try tensor.doubles() == [1.5, -2])
        let bool = try NumpyFile.decode(npy(header: "{'descr': '<b1', 'fortran_order': False, 'shape': (), }", data: [1]))
        #expect(try bool.values(as: Bool.self) == [true])
    }

    @Test func rejectsBFloat16WithAPointerToSafetensors() throws {
        let tensor = try HostTensor(shape: [1], values: [BFloat16(1)])
        do {
            _ = try NumpyFile.encode(tensor)
            Issue.record("bf16 was written")
        } catch {
            #expect(numpyProblem(error) == .bfloat16NotRepresentable)
            #expect(String(describing: error).contains("safetensors"))
        }
    }

    @Test func rejectsMalformedFiles() throws {
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"
        let data = [UInt8](repeating: 0, count: 8)
        #expect(problem(npy(header: good, data: data)) == nil)
        #expect(problem(Array("PK\u{3}\u{4}not numpy at all".utf8)) == .badMagic)
        #expect(problem([]) == .headerTooShort(fileSize: 0, headerEnd: 10))
        var wrongVersion = npy(header: good, data: data)
        wrongVersion[6] = 4
        #expect(problem(wrongVersion) == .unsupportedVersion(major: 4, minor: 0))
        let whole = npy(header: good, data: data)
        #expect(problem(Array(whole.prefix(20))) == .headerTooShort(fileSize: 20, headerEnd: 10 + good.utf8.count))
        #expect(problem(Array(whole.dropLast(3))) == .dataSizeMismatch(expected: 8, actual: 5))
        #expect(problem(whole + [0]) == .dataSizeMismatch(expected: 8, actual: 9))
        #expect(problem(npy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", data: data)) == .fortranOrder)
        #expect(problem(npy(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data: data)) == .unsupportedDescr(">f4"))
        #expect(problem(npy(header: "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data: data)) == .unsupportedDescr("|O"))
        #expect(problem(npy(header: "{'descr': '<u2', 'fortran_order': False, 'shape': (4,), }", data: data)) == .unsupportedDescr("<u2"))
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"
        #expect(problem(npy(header: structured, data: data)) == .unsupportedDescr("(('a', '<f4'))"))
        for broken in [
            "{'descr': '<f4', 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ",
            "{'descr': '<f4', 'fortran_order': None, 'shape': (2,), }",
            "['descr']",
        ] {
            guard case .malformedHeader? = problem(npy(header: broken, data: data)) else {
                Issue.record("accepted or misreported: \(broken)")
                continue
            }
        }
    }

    @Test func errorsNameTheFile() throws {
        let directory = try makeTemporaryDirectory()
        let path = "\(directory)/missing.npy"
        do {
            _ = try NumpyFile.read(path: path)
            Issue.record("read a missing file")
        } catch {
            guard case .io(path, "open", _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(String(describing: error).contains(path))
        }
        do {
            _ = try NumpyFile.decode([0x93] + Array("NUMPY".utf8) + [1, 0, 200, 0], name: "short.npy")
        } catch {
            #expect(String(describing: error).contains("short.npy"))
            #expect(String(describing: error).contains("truncated"))
        }
    }
}
