/// Where one tensor of a `.safetensors` file lives.
public struct SafetensorsTensorInfo: Hashable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// The tensor's bytes in the whole file (header included), `begin..<end`.
    public let fileByteRange: Range<Int>
}

/// A `.safetensors` file opened for reading: an 8-byte little-endian header length, a JSON header
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}`, then
/// the data, with offsets relative to the end of the header.
///
/// Opening memory-maps the file and validates the whole header: the header length fits the file, every
/// entry has a supported dtype (`F32 F16 BF16 F64 I8 I16 I32 I64 U8 BOOL`), non-negative integer shape
/// and offsets, a byte count equal to prod(shape) · element size, bytes inside the file, and no two
/// tensors share bytes (gaps between tensors are allowed). Opening is O(header); a tensor's bytes are
/// read from disk only when `tensor(_:)` copies them (once) or `withUnsafeBytes(of:_:)` touches them.
///
/// A value type sharing one read-only mapping; the mapping is released when the last copy goes away.
public struct SafetensorsFile: Sendable {
    private let file: FileBytes
    private let infoByName: [String: SafetensorsTensorInfo]
    /// The file path (or the buffer name).
    public var path: String { file.path }
    /// Tensor names, sorted.
    public let tensorNames: [String]
    /// The `__metadata__` object (empty when absent).
    public let metadata: [String: String]

    /// Maps and validates the file at `path`.
    public init(path: String) throws(TensorError) {
        try self.init(file: FileBytes(mappingFileAt: path))
    }

    /// Validates the bytes of a `.safetensors` file held in memory; `name` is used in error messages.
    public init(bytes: [UInt8], name: String = "<memory>") throws(TensorError) {
        try self.init(file: FileBytes(copying: bytes, name: name))
    }

    private init(file: FileBytes) throws(TensorError) {
        let header = try SafetensorsHeader(file: file)
        self.file = file
        self.infoByName = header.infoByName
        self.tensorNames = header.infoByName.keys.sorted()
        self.metadata = header.metadata
    }

    /// The dtype, shape and byte range of tensor `name`.
    public func info(_ name: String) throws(TensorError) -> SafetensorsTensorInfo {
        guard let info = infoByName[name] else { throw .safetensors(path: path, problem: .noSuchTensor(name)) }
        return info
    }

    /// A copy of tensor `name`. Cost: O(its bytes).
    public func tensor(_ name: String) throws(TensorError) -> HostTensor {
        let info = try info(name)
        return try HostTensor(shape: info.shape, dtype: info.dtype, bytes: file.copy(info.fileByteRange))
    }

    /// Calls `body` with tensor `name`'s bytes inside the mapping, without copying them. The pointer is
    /// valid only during the call.
    public func withUnsafeBytes<R, E: Error>(of name: String, _ body: (UnsafeRawBufferPointer) throws(E) -> R)
        throws -> R
    {
        let info = try info(name)
        return try body(UnsafeRawBufferPointer(rebasing: file.buffer[info.fileByteRange]))
    }

    // MARK: Writing

    /// Writes `tensors` (and `metadata`) to `path` as a `.safetensors` file that Python's `safetensors`
    /// reads: names sorted, data contiguous in name order, the header padded with spaces to a multiple of
    /// 8 bytes. Throws for an empty name or the reserved name `__metadata__`.
    public static func write(
        _ tensors: [String: HostTensor], metadata: [String: String] = [:], to path: String
    ) throws(TensorError) {
        let (header, names) = try encodeHeader(tensors, metadata: metadata, path: path)
        let writer = try FileWriter(creating: path)
        try writer.write(header)
        for name in names { try writer.write(tensors[name]!.bytes) }
        try writer.close()
    }

    /// The bytes of a `.safetensors` file holding `tensors`; see `write(_:metadata:to:)`.
    public static func encode(_ tensors: [String: HostTensor], metadata: [String: String] = [:]) throws(TensorError)
        -> [UInt8]
    {
        let (header, names) = try encodeHeader(tensors, metadata: metadata, path: "<memory>")
        var bytes = header
        for name in names { bytes += tensors[name]!.bytes }
        return bytes
    }

    /// The 8 length bytes and the padded JSON header, and the names in data order.
    private static func encodeHeader(
        _ tensors: [String: HostTensor], metadata: [String: String], path: String
    ) throws(TensorError) -> (header: [UInt8], names: [String]) {
        let names = tensors.keys.sorted()
        var entries = [(key: String, value: JSONValue)]()
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { (key: $0, value: JSONValue.string(metadata[$0]!)) }
            entries.append(("__metadata__", .object(pairs)))
        }
        var offset = 0
        for name in names {
            guard !name.isEmpty, name != "__metadata__" else {
                throw .safetensors(path: path, problem: .invalidTensorName(name))
            }
            let tensor = tensors[name]!
            let end = offset + tensor.bytes.count
            let entry: [(key: String, value: JSONValue)] = [
                ("dtype", .string(SafetensorsHeader.name(of: tensor.dtype))),
                ("shape", .array(tensor.shape.map { .number(String($0)) })),
                ("data_offsets", .array([.number(String(offset)), .number(String(end))])),
            ]
            entries.append((name, .object(entry)))
            offset = end
        }
        var json = Array(JSONValue.object(entries).serialized.utf8)
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var header = [UInt8]()
        header.reserveCapacity(8 + json.count)
        for index in 0..<8 { header.append(UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * index))) }
        header += json
        return (header, names)
    }
}

/// The parsed and validated header of a `.safetensors` file.
struct SafetensorsHeader {
    var infoByName: [String: SafetensorsTensorInfo] = [:]
    var metadata: [String: String] = [:]

    /// The largest JSON header accepted, as in the reference implementation.
    static let maximumHeaderLength: UInt64 = 100_000_000

    init(file: FileBytes) throws(TensorError) {
        func fail(_ problem: SafetensorsProblem) -> TensorError { .safetensors(path: file.path, problem: problem) }
        let bytes = file.buffer
        guard bytes.count >= 8 else { throw fail(.fileTooShort(fileSize: bytes.count)) }
        var headerLength: UInt64 = 0
        for index in 0..<8 { headerLength |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        guard headerLength <= Self.maximumHeaderLength, headerLength <= UInt64(bytes.count - 8) else {
            throw fail(.headerLengthOutOfRange(headerLength: headerLength, fileSize: bytes.count))
        }
        let dataStart = 8 + Int(headerLength)
        let root: JSONValue
        do throws(JSONError) {
            root = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
        } catch {
            throw fail(.invalidHeader(error.description))
        }
        guard case let .object(entries) = root else { throw fail(.invalidHeader("the header is not a JSON object")) }

        for (name, value) in entries {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw fail(.invalidHeader("\"__metadata__\" must be an object of strings"))
                }
                for (key, item) in pairs {
                    guard case let .string(text) = item else {
                        throw fail(.invalidHeader("\"__metadata__\" value of \"\(key)\" is not a string"))
                    }
                    metadata[key] = text
                }
                continue
            }
            infoByName[name] = try Self.entry(name: name, value, dataStart: dataStart, fileSize: bytes.count, fail: fail)
        }

        // No two non-empty tensors may share bytes.
        let ranges = infoByName.values.filter { !$0.fileByteRange.isEmpty }
            .sorted { ($0.fileByteRange.lowerBound, $0.name) < ($1.fileByteRange.lowerBound, $1.name) }
        for (previous, next) in zip(ranges, ranges.dropFirst())
        where next.fileByteRange.lowerBound < previous.fileByteRange.upperBound {
            throw fail(.overlappingTensors(previous.name, next.name))
        }
    }

    private static func entry(
        name: String, _ value: JSONValue, dataStart: Int, fileSize: Int,
        fail: (SafetensorsProblem) -> TensorError
    ) throws(TensorError) -> SafetensorsTensorInfo {
        guard case .object = value else { throw fail(.invalidEntry(tensor: name, reason: "is not an object")) }
        guard case let .string(dtypeName)? = value["dtype"] else {
            throw fail(.invalidEntry(tensor: name, reason: "has no string \"dtype\""))
        }
        guard case let .array(shapeItems)? = value["shape"] else {
            throw fail(.invalidEntry(tensor: name, reason: "has no array \"shape\""))
        }
        var shape = [Int]()
        for item in shapeItems {
            guard let size = item.unsignedInteger, size <= UInt64(Int.max) else {
                throw fail(.invalidEntry(tensor: name, reason: "has a shape entry that is not a non-negative integer"))
            }
            shape.append(Int(size))
        }
        guard case let .array(offsets)? = value["data_offsets"], offsets.count == 2,
            let begin = offsets[0].unsignedInteger, let end = offsets[1].unsignedInteger
        else {
            throw fail(.invalidEntry(tensor: name, reason: "has no \"data_offsets\" of two non-negative integers"))
        }
        guard let dtype = dtype(named: dtypeName) else { throw fail(.unknownDType(tensor: name, dtype: dtypeName)) }

        let start = UInt64(dataStart)
        let (fileBegin, overflow1) = start.addingReportingOverflow(begin)
        let (fileEnd, overflow2) = start.addingReportingOverflow(end)
        guard !overflow1, !overflow2, begin <= end, fileEnd <= UInt64(fileSize) else {
            throw fail(.offsetsOutOfRange(
                tensor: name, begin: overflow1 ? .max : fileBegin, end: overflow2 ? .max : fileEnd, fileSize: fileSize))
        }
        let actual = Int(end - begin)
        guard let count = try? HostTensor.elementCount(of: shape) else {
            throw fail(.invalidEntry(tensor: name, reason: "has a shape whose element count overflows"))
        }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow, expected == actual else {
            throw fail(.byteCountMismatch(tensor: name, expected: overflow ? Int.max : expected, actual: actual))
        }
        return SafetensorsTensorInfo(
            name: name, dtype: dtype, shape: shape, fileByteRange: Int(fileBegin)..<Int(fileEnd))
    }

    static func dtype(named name: String) -> DType? {
        switch name {
        case "F32": return .float32
        case "F16": return .float16
        case "BF16": return .bfloat16
        case "F64": return .float64
        case "I8": return .int8
        case "I16": return .int16
        case "I32": return .int32
        case "I64": return .int64
        case "U8": return .uint8
        case "BOOL": return .bool
        default: return nil
        }
    }

    static func name(of dtype: DType) -> String {
        switch dtype {
        case .float32: return "F32"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .float64: return "F64"
        case .int8: return "I8"
        case .int16: return "I16"
        case .int32: return "I32"
        case .int64: return "I64"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        }
    }
}
