/// Reading and writing numpy `.npy` files (one array per file).
///
/// Reads format versions 1.0, 2.0 and 3.0 with the C-order little-endian dtypes
/// `<f4 <f2 <f8 |i1 <i2 <i4 <i8 |u1 |b1` (`<` and `|` are interchangeable for one-byte types).
/// Rejects Fortran order, big-endian, object, structured and string dtypes, bad magic, truncated
/// headers or data, and trailing bytes after the data.
///
/// Writes version 1.0, or 2.0 when the header is longer than 65,535 bytes, padded to 64-byte alignment
/// like numpy. bfloat16 has no numpy dtype, so writing a bf16 tensor throws
/// `NumpyProblem.bfloat16NotRepresentable`; use `SafetensorsFile` for bf16.
public enum NumpyFile {
    /// Reads the array in the file at `path`. The file is memory-mapped and its data copied once into the
    /// tensor. Cost: O(file size).
    public static func read(path: String) throws(TensorError) -> HostTensor {
        try decode(FileBytes(mappingFileAt: path))
    }

    /// Decodes the bytes of a `.npy` file; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String = "<memory>") throws(TensorError) -> HostTensor {
        try decode(FileBytes(copying: bytes, name: name))
    }

    /// Writes `tensor` to `path` as a `.npy` file, atomically (see `OutputFile`).
    public static func write(_ tensor: HostTensor, to path: String) throws(TensorError) {
        let header = try header(for: tensor, path: path)
        let writer = try FileWriter(creating: path)
        try writer.write(header)
        try writer.write(tensor.bytes)
        try writer.close()
    }

    /// The bytes of a `.npy` file holding `tensor`.
    public static func encode(_ tensor: HostTensor) throws(TensorError) -> [UInt8] {
        try header(for: tensor, path: "<memory>") + tensor.bytes
    }

    // MARK: Reading

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    static func decode(_ file: FileBytes) throws(TensorError) -> HostTensor {
        func fail(_ problem: NumpyProblem) -> TensorError { .numpy(path: file.path, problem: problem) }
        let bytes = file.buffer
        guard bytes.count >= 8 else {
            if !magic.starts(with: bytes.prefix(magic.count)) { throw fail(.badMagic) }
            throw fail(.headerTooShort(fileSize: bytes.count, headerEnd: 10))
        }
        guard bytes.prefix(magic.count).elementsEqual(magic) else { throw fail(.badMagic) }
        let major = Int(bytes[6])
        let minor = Int(bytes[7])
        let lengthBytes: Int
        switch (major, minor) {
        case (1, 0): lengthBytes = 2
        case (2, 0), (3, 0): lengthBytes = 4
        default: throw fail(.unsupportedVersion(major: major, minor: minor))
        }
        let preamble = 8 + lengthBytes
        guard bytes.count >= preamble else { throw fail(.headerTooShort(fileSize: bytes.count, headerEnd: preamble)) }
        var headerLength = 0
        for index in 0..<lengthBytes { headerLength |= Int(bytes[8 + index]) << (8 * index) }
        let headerEnd = preamble + headerLength
        guard bytes.count >= headerEnd else {
            throw fail(.headerTooShort(fileSize: bytes.count, headerEnd: headerEnd))
        }
        let header = UnsafeRawBufferPointer(rebasing: bytes[preamble..<headerEnd])
        let fields: NumpyHeaderFields
        do throws(NumpyProblem) { fields = try NumpyHeaderFields(parsing: header) } catch { throw fail(error) }

        let count: Int
        do throws(TensorError) { count = try HostTensor.elementCount(of: fields.shape) } catch {
            throw fail(.malformedHeader("shape \(fields.shape) is invalid"))
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: fields.dtype.byteCount)
        guard !overflow else { throw fail(.malformedHeader("shape \(fields.shape) is too large")) }
        let available = bytes.count - headerEnd
        guard available == needed else { throw fail(.dataSizeMismatch(expected: needed, actual: available)) }
        return try HostTensor(shape: fields.shape, dtype: fields.dtype, bytes: file.copy(headerEnd..<bytes.count))
    }

    // MARK: Writing

    /// The `.npy` descriptor numpy writes for `dtype`, or nil for bf16.
    static func descr(for dtype: DType) -> String? {
        switch dtype {
        case .float32: return "<f4"
        case .float16: return "<f2"
        case .float64: return "<f8"
        case .int8: return "|i1"
        case .int16: return "<i2"
        case .int32: return "<i4"
        case .int64: return "<i8"
        case .uint8: return "|u1"
        case .bool: return "|b1"
        case .bfloat16: return nil
        }
    }

    /// Magic, version, header length and the header dict, padded with spaces and a newline so the data
    /// starts at a multiple of 64 bytes.
    static func header(for tensor: HostTensor, path: String) throws(TensorError) -> [UInt8] {
        guard let descr = descr(for: tensor.dtype) else {
            throw .numpy(path: path, problem: .bfloat16NotRepresentable)
        }
        let shape: String
        switch tensor.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(tensor.shape[0]),)"
        default: shape = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        let dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        let alignment = 64
        for (version, lengthBytes) in [(UInt8(1), 2), (UInt8(2), 4)] {
            let preamble = 8 + lengthBytes
            let unpadded = preamble + dict.count + 1
            let total = (unpadded + alignment - 1) / alignment * alignment
            let headerLength = total - preamble
            guard headerLength < 1 << (8 * lengthBytes) else { continue }
            var result = magic + [version, 0]
            for index in 0..<lengthBytes { result.append(UInt8(truncatingIfNeeded: headerLength >> (8 * index))) }
            result += dict
            result += [UInt8](repeating: 0x20, count: total - unpadded)
            result.append(0x0A)
            return result
        }
        // A header above 4 GB would need a shape with hundreds of millions of axes.
        throw .invalidShape(tensor.shape)
    }
}
