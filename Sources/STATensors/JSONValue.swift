/// A JSON value, as strict RFC 8259 text: the `.safetensors` header format, and the machine-readable
/// output of the tools.
///
/// Numbers keep their text so that 64-bit offsets convert exactly; objects keep their key order and
/// reject repeated keys.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// A number from a `Double`; non-finite values become `null` (JSON has no NaN or infinity).
    public static func real(_ value: Double) -> JSONValue { value.isFinite ? .number("\(value)") : .null }

    /// A number from an integer.
    public static func integer<I: BinaryInteger>(_ value: I) -> JSONValue { .number("\(value)") }

    /// Parses one JSON value from `text`. Cost: O(text length).
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        let bytes = Array(text.utf8)
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { buffer in
            do throws(JSONError) { return .success(try JSONParser.parse(buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// The value of a number written as a non-negative integer (no sign, fraction or exponent) that fits
    /// in `UInt64`; nil otherwise.
    public var unsignedInteger: UInt64? {
        guard case let .number(text) = self, !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }) else {
            return nil
        }
        return UInt64(text)
    }

    /// The value of `key` in an object, nil for other values or a missing key.
    public subscript(key: String) -> JSONValue? {
        guard case let .object(entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    // MARK: Writing

    /// Compact JSON text (no spaces), object keys in their stored order.
    public var serialized: String {
        var output = ""
        write(to: &output)
        return output
    }

    private func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case let .bool(flag): output += flag ? "true" : "false"
        case let .number(text): output += text
        case let .string(text): Self.writeString(text, to: &output)
        case let .array(items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                item.write(to: &output)
            }
            output += "]"
        case let .object(entries):
            output += "{"
            for (index, entry) in entries.enumerated() {
                if index > 0 { output += "," }
                Self.writeString(entry.key, to: &output)
                output += ":"
                entry.value.write(to: &output)
            }
            output += "}"
        }
    }

    private static func writeString(_ text: String, to output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{0}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}

/// Why JSON text was rejected, with the byte offset.
public struct JSONError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict recursive-descent JSON parser over UTF-8 bytes.
struct JSONParser {
    private let text: UnsafeRawBufferPointer
    private var position = 0
    private static let maximumDepth = 64

    /// Parses one JSON value filling all of `text` (surrounding whitespace allowed).
    static func parse(_ text: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var parser = JSONParser(text: text)
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == text.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private init(text: UnsafeRawBufferPointer) { self.text = text }

    private func error(_ message: String) -> JSONError { JSONError(message: message, offset: position) }

    private var next: UInt8? { position < text.count ? text[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = next, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard next == byte else { return false }
        position += 1
        return true
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONError) {
        guard consume(byte) else { throw error("expected \(what)") }
    }

    private mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        skipWhitespace()
        guard let byte = next else { throw error("the text ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"):
            position += 1
            var entries = [(key: String, value: JSONValue)]()
            var keys = Set<String>()
            if consume(UInt8(ascii: "}")) { return .object(entries) }
            repeat {
                skipWhitespace()
                guard next == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try parseString()
                guard keys.insert(key).inserted else { throw error("key \"\(key)\" repeats") }
                try expect(UInt8(ascii: ":"), "':' after a key")
                entries.append((key, try parseValue(depth: depth + 1)))
            } while consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "}"), "',' or '}' in an object")
            return .object(entries)
        case UInt8(ascii: "["):
            position += 1
            var items = [JSONValue]()
            if consume(UInt8(ascii: "]")) { return .array(items) }
            repeat {
                items.append(try parseValue(depth: depth + 1))
            } while consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "]"), "',' or ']' in an array")
            return .array(items)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            for (word, value) in [("true", JSONValue.bool(true)), ("false", .bool(false)), ("null", .null)]
            where matches(word) {
                position += word.utf8.count
                return value
            }
            throw error("unexpected character '\(Character(Unicode.Scalar(byte)))'")
        }
    }

    private func matches(_ word: String) -> Bool {
        let bytes = Array(word.utf8)
        guard position + bytes.count <= text.count else { return false }
        return (0..<bytes.count).allSatisfy { text[position + $0] == bytes[$0] }
    }

    private mutating func parseNumber() throws(JSONError) -> String {
        let start = position
        func digits(_ parser: inout JSONParser) -> Int {
            var count = 0
            while let byte = parser.next, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                parser.position += 1
                count += 1
            }
            return count
        }
        if next == UInt8(ascii: "-") { position += 1 }
        if next == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw error("a number needs digits")
        }
        if next == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw error("a fraction needs digits") }
        }
        if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            position += 1
            if next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw error("an exponent needs digits") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: text[start..<position]), as: UTF8.self)
    }

    /// Parses a string starting at its opening quote; validates UTF-8 and escapes.
    private mutating func parseString() throws(JSONError) -> String {
        position += 1
        var bytes = [UInt8]()
        while true {
            guard let byte = next else { throw error("a string is not closed") }
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let string = String(validating: bytes, as: UTF8.self) else { throw error("a string is not valid UTF-8") }
                return string
            case 0..<0x20:
                throw error("a control character must be escaped in a string")
            case UInt8(ascii: "\\"):
                guard let escape = next else { throw error("a string ends inside an escape") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(escape)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard matches("\\u") else { throw error("a high surrogate is not followed by a low one") }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("a low surrogate without a high one")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                    bytes.append(contentsOf: String(Character(scalar)).utf8)
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))'")
                }
            default:
                bytes.append(byte)
            }
        }
    }

    private mutating func parseHex4() throws(JSONError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = next, let digit = Self.hexValue(byte) else { throw error("\\u needs four hex digits") }
            code = code << 4 | digit
            position += 1
        }
        return code
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
