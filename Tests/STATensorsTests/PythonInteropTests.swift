import Foundation
import Testing
@testable import STATensors

/// Runs `python3` with `script` and `arguments`; returns the exit status and output.
private func runPython(_ script: String, arguments: [String] = []) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

private let numpyIsAvailable = runPython("import numpy").status == 0

/// Checks our files with numpy and our reader with numpy's files. Skipped when numpy is missing.
@Suite(.enabled(if: numpyIsAvailable, "python3 with numpy is not installed"))
struct PythonInteropTests {
    /// numpy reads every .npy and the .safetensors we write (the latter through its JSON header and
    /// np.frombuffer, validated like the reference implementation), writes them back as .npy in
    /// versions 1.0, 2.0 and 3.0, and we read those and compare.
    @Test func numpyAndWeAgree() throws {
        let directory = try makeTemporaryDirectory()
        let samples = try sampleTensors()
        for (dtype, tensor) in samples where dtype != .bfloat16 {
            try NumpyFile.write(tensor, to: "\(directory)/\(dtype).npy")
        }
        var named = [String: HostTensor]()
        for (dtype, tensor) in samples { named[dtype.shortName] = tensor }
        try SafetensorsFile.write(named, metadata: ["format": "pt"], to: "\(directory)/all.safetensors")

        let script = #"""
            import json, sys, os, numpy as np
            d = sys.argv[1]
            kinds = {'F32': '<f4', 'F16': '<f2', 'F64': '<f8', 'I8': '|i1', 'I16': '<i2', 'I32': '<i4',
                     'I64': '<i8', 'U8': '|u1', 'BOOL': '|b1', 'BF16': '<u2'}
            expected = {'f32': 'float32', 'f16': 'float16', 'f64': 'float64', 'i8': 'int8', 'i16': 'int16',
                        'i32': 'int32', 'i64': 'int64', 'u8': 'uint8', 'bool': 'bool'}
            versions = [(1, 0), (2, 0), (3, 0)]
            for i, (short, name) in enumerate(sorted(expected.items())):
                a = np.load(os.path.join(d, short + '.npy'))
                assert a.dtype == np.dtype(name), (short, a.dtype)
                assert a.shape == (2, 3, 4), a.shape
                with open(os.path.join(d, 'np_' + short + '.npy'), 'wb') as f:
                    np.lib.format.write_array(f, a, version=versions[i % 3])
            raw = open(os.path.join(d, 'all.safetensors'), 'rb').read()
            n = int.from_bytes(raw[:8], 'little')
            assert n % 8 == 0
            header = json.loads(raw[8:8 + n])
            assert header.pop('__metadata__') == {'format': 'pt'}
            data = raw[8 + n:]
            end = 0
            for key, entry in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
                b, e = entry['data_offsets']
                assert b == end, (key, b, end)
                end = e
                a = np.frombuffer(data[b:e], dtype=kinds[entry['dtype']]).reshape(entry['shape'])
                if entry['dtype'] == 'BF16':
                    a = (a.astype(np.uint32) << 16).view(np.float32)
                np.save(os.path.join(d, 'st_' + key + '.npy'), a)
            assert end == len(data), (end, len(data))
            x = (np.arange(12, dtype=np.float32) / 7).reshape(3, 4)
            np.save(os.path.join(d, 'np_generated.npy'), np.asfortranarray(x).copy(order='C'))
            np.save(os.path.join(d, 'np_fortran.npy'), np.asfortranarray(x))
            np.save(os.path.join(d, 'np_bigendian.npy'), x.astype('>f4'))
            # A .safetensors file laid out the way Python code writes one by hand (json.dumps spacing).
            w = (np.arange(6, dtype=np.float32) - 2.5).reshape(2, 3)
            h = np.array([1.0, -2.0, 3.5], dtype=np.float32).view(np.uint32) >> 16
            blobs = [('w', 'F32', w.shape, w.tobytes()), ('h', 'BF16', (3,), h.astype('<u2').tobytes())]
            meta, offset, body = {'__metadata__': {'source': 'numpy'}}, 0, b''
            for name, dt, shape, blob in blobs:
                meta[name] = {'dtype': dt, 'shape': list(shape), 'data_offsets': [offset, offset + len(blob)]}
                offset += len(blob)
                body += blob
            text = json.dumps(meta).encode()
            text += b' ' * (-len(text) % 8)
            open(os.path.join(d, 'py.safetensors'), 'wb').write(len(text).to_bytes(8, 'little') + text + body)
            print('ok')
            """#
        let result = runPython(script, arguments: [directory])
        try #require(result.status == 0, "python failed: \(result.output)")

        for (dtype, tensor) in samples where dtype != .bfloat16 {
            #expect(try NumpyFile.read(path: "\(directory)/np_\(dtype.shortName).npy") == tensor, "dtype \(dtype)")
        }
        for (dtype, tensor) in samples {
            let back = try NumpyFile.read(path: "\(directory)/st_\(dtype.shortName).npy")
            let expected = dtype == .bfloat16 ? try tensor.converted(to: .float32) : tensor
            #expect(back == expected, "dtype \(dtype)")
        }
        let python = try SafetensorsFile(path: "\(directory)/py.safetensors")
        #expect(python.metadata == ["source": "numpy"])
        #expect(python.tensorNames == ["h", "w"])
        #expect(try python.tensor("w").floats() == [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
        #expect(try python.tensor("w").shape == [2, 3])
        #expect(try python.tensor("h").dtype == .bfloat16)
        #expect(try python.tensor("h").floats() == [1, -2, 3.5])
        let generated = try NumpyFile.read(path: "\(directory)/np_generated.npy")
        #expect(generated.shape == [3, 4])
        #expect(try generated.floats() == (0..<12).map { Float($0) / 7 })
        #expect(throws: TensorError.numpy(path: "\(directory)/np_fortran.npy", problem: .fortranOrder)) {
            try NumpyFile.read(path: "\(directory)/np_fortran.npy")
        }
        #expect(throws: TensorError.numpy(path: "\(directory)/np_bigendian.npy", problem: .unsupportedDescr(">f4"))) {
            try NumpyFile.read(path: "\(directory)/np_bigendian.npy")
        }
    }
}
