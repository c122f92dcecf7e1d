/// The three fields of a `.npy` header dict, parsed from its Python-literal text, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
///
/// The parser accepts exactly what numpy writes and reads: a dict of string keys whose values are
/// strings, `True`/`False`, integers and tuples or lists of those; the keys must be exactly `descr`,
/// `fortran_order` and `shape`.
struct NumpyHeaderFields {
    var dtype: DType
    var shape: [Int]

    init(parsing header: UnsafeRawBufferPointer) throws(NumpyProblem) {
        var parser = PythonLiteralParser(text: Array(header))
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.isAtEnd else { throw .malformedHeader("unexpected text after the dict") }
        guard case let .dict(entries) = value else { throw .malformedHeader("the header is not a dict") }
        let keys = Set(entries.map(\.key))
        guard keys == ["descr", "fortran_order", "shape"], entries.count == 3 else {
            throw .malformedHeader("the keys are \(entries.map(\.key).sorted()), not exactly descr, fortran_order, shape")
        }
        var descr: PythonLiteral = .bool(false)
        var fortranOrder: PythonLiteral = .bool(false)
        var shape: PythonLiteral = .bool(false)
        for (key, value) in entries {
            switch key {
            case "descr": descr = value
            case "fortran_order": fortranOrder = value
            default: shape = value
            }
        }
        guard case let .string(descrText) = descr else { throw .unsupportedDescr(descr.description) }
        guard let dtype = Self.dtype(descr: descrText) else { throw .unsupportedDescr(descrText) }
        guard case let .bool(isFortran) = fortranOrder else {
            throw .malformedHeader("fortran_order is \(fortranOrder), not True or False")
        }
        guard !isFortran else { throw .fortranOrder }
        guard case let .sequence(items) = shape else { throw .malformedHeader("shape is \(shape), not a tuple") }
        var dimensions = [Int]()
        for item in items {
            guard case let .integer(size) = item, size >= 0 else {
                throw .malformedHeader("shape \(shape) must hold non-negative integers")
            }
            dimensions.append(size)
        }
        self.dtype = dtype
        self.shape = dimensions
    }

    /// The dtype of a numpy descriptor such as `<f4`, or nil when unsupported.
    static func dtype(descr: String) -> DType? {
        guard let order = descr.first, ["<", "|", "=", ">"].contains(order) else { return nil }
        let code = descr.dropFirst()
        let dtype: DType
        switch code {
        case "f4": dtype = .float32
        case "f2": dtype = .float16
        case "f8": dtype = .float64
        case "i1": dtype = .int8
        case "i2": dtype = .int16
        case "i4": dtype = .int32
        case "i8": dtype = .int64
        case "u1": dtype = .uint8
        case "b1": dtype = .bool
        default: return nil
        }
        // Byte order matters only for multi-byte types: '<' little, '=' native (this host is little-endian).
        if dtype.byteCount > 1, order != "<", order != "=" { return nil }
        return dtype
    }
}

/// A Python literal as it appears in a `.npy` header.
enum PythonLiteral: CustomStringConvertible {
    case string(String)
    case bool(Bool)
    case integer(Int)
    case sequence([PythonLiteral])
    case dict([(key: String, value: PythonLiteral)])

    var description: String {
        switch self {
        case let .string(text): return "'\(text)'"
        case let .bool(flag): return flag ? "True" : "False"
        case let .integer(value): return String(value)
        case let .sequence(items): return "(" + items.map(\.description).joined(separator: ", ") + ")"
        case let .dict(entries):
            return "{" + entries.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}

/// A recursive-descent parser for the subset of Python literals numpy headers use.
struct PythonLiteralParser {
    let text: [UInt8]
    var position = 0

    init(text: [UInt8]) { self.text = text }

    var isAtEnd: Bool { position >= text.count }

    mutating func skipWhitespace() {
        while position < text.count, [0x20, 0x0A, 0x0D, 0x09].contains(text[position]) { position += 1 }
    }

    private mutating func expect(_ byte: UInt8) throws(NumpyProblem) {
        skipWhitespace()
        guard position < text.count, text[position] == byte else {
            throw .malformedHeader("expected '\(Character(Unicode.Scalar(byte)))' at header byte \(position)")
        }
        position += 1
    }

    /// Consumes `byte` if it is next (after whitespace).
    private mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if position < text.count, text[position] == byte {
            position += 1
            return true
        }
        return false
    }

    mutating func parseValue(depth: Int = 0) throws(NumpyProblem) -> PythonLiteral {
        guard depth < 16 else { throw .malformedHeader("nesting deeper than 16 levels") }
        skipWhitespace()
        guard position < text.count else { throw .malformedHeader("the header ends early") }
        switch text[position] {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "{"):
            position += 1
            var entries = [(key: String, value: PythonLiteral)]()
            while !consume(UInt8(ascii: "}")) {
                skipWhitespace()
                guard case let .string(key) = try parseValue(depth: depth + 1) else {
                    throw .malformedHeader("dict keys must be strings (header byte \(position))")
                }
                guard !entries.contains(where: { $0.key == key }) else { throw .malformedHeader("key '\(key)' repeats") }
                try expect(UInt8(ascii: ":"))
                entries.append((key, try parseValue(depth: depth + 1)))
                if !consume(UInt8(ascii: ",")) {
                    try expect(UInt8(ascii: "}"))
                    break
                }
            }
            return .dict(entries)
        case UInt8(ascii: "("), UInt8(ascii: "["):
            let close = text[position] == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
            position += 1
            var items = [PythonLiteral]()
            while !consume(close) {
                items.append(try parseValue(depth: depth + 1))
                if !consume(UInt8(ascii: ",")) {
                    try expect(close)
                    break
                }
            }
            return .sequence(items)
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
            return .integer(try parseInteger())
        default:
            let start = position
            while position < text.count, isIdentifierByte(text[position]) { position += 1 }
            let word = String(decoding: text[start..<position], as: UTF8.self)
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "": throw .malformedHeader("unexpected character at header byte \(start)")
            default: throw .malformedHeader("unsupported value '\(word)'")
            }
        }
    }

    private func isIdentifierByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
    }

    private mutating func parseString() throws(NumpyProblem) -> String {
        let quote = text[position]
        position += 1
        let start = position
        while position < text.count, text[position] != quote {
            // Escapes never occur in the fields numpy writes; reject them rather than misread them.
            guard text[position] != UInt8(ascii: "\\") else { throw .malformedHeader("escapes in strings are not supported") }
            position += 1
        }
        guard position < text.count else { throw .malformedHeader("a string is not closed") }
        let value = String(decoding: text[start..<position], as: UTF8.self)
        position += 1
        return value
    }

    private mutating func parseInteger() throws(NumpyProblem) -> Int {
        let negative = text[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        var value = 0
        var digits = 0
        while position < text.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[position]) {
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(Int(text[position] - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw .malformedHeader("an integer does not fit in 64 bits") }
            value = sum
            digits += 1
            position += 1
        }
        guard digits > 0 else { throw .malformedHeader("'-' without digits at header byte \(position)") }
        // Python 2 era files may write long integers with an L suffix.
        if position < text.count, text[position] == UInt8(ascii: "L") { position += 1 }
        return negative ? -value : value
    }
}
