import STAGeometry

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MaskStrategy {
    /// The flat JSON object, one entry per line, sorted by step, layer, head:
    ///
    /// ```
    /// {
    ///   "0_0_0": [5, 6, 10],
    ///   "15_0_0": [5, 3, 3]
    /// }
    /// ```
    public var jsonText: String {
        let lines = entries.map { entry in
            "  \"\(entry.key)\": [" + entry.window.tiles.map(String.init).joined(separator: ", ") + "]"
        }
        return lines.isEmpty ? "{}\n" : "{\n" + lines.joined(separator: ",\n") + "\n}\n"
    }

    /// Parses the flat JSON object: keys `"<step>_<layer>_<head>"` of non-negative integers, values
    /// arrays of 1 to 3 positive integers (a window in tiles). Any JSON whitespace is accepted; a
    /// repeated key, another value type or trailing text is rejected. `path` names the source in errors.
    public init(jsonText: String, path: String = "<text>") throws(WindowSearchError) {
        self.init()
        var parser = StrategyParser(bytes: Array(jsonText.utf8), path: path)
        for (key, window) in try parser.parse() {
            guard self[step: key.step, layer: key.layer, head: key.head] == nil else {
                throw .malformedStrategy(path: path, reason: "key \"\(key)\" appears twice")
            }
            self[step: key.step, layer: key.layer, head: key.head] = window
        }
    }

    /// Reads a strategy file. Cost: O(file size).
    public static func read(path: String) throws(WindowSearchError) -> MaskStrategy {
        guard let file = fopen(path, "rb") else { throw .io(path: path, operation: "open", errno: errno) }
        defer { fclose(file) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            bytes += chunk[0..<count]
            if count < chunk.count {
                guard ferror(file) == 0 else { throw .io(path: path, operation: "read", errno: errno) }
                break
            }
        }
        return try MaskStrategy(jsonText: String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Writes `jsonText` to `path`, replacing it.
    public func write(path: String) throws(WindowSearchError) {
        guard let file = fopen(path, "wb") else { throw .io(path: path, operation: "open", errno: errno) }
        let bytes = Array(jsonText.utf8)
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let closed = fclose(file)
        guard written == bytes.count, closed == 0 else { throw .io(path: path, operation: "write", errno: errno) }
    }
}

/// A strict parser for exactly the strategy's JSON subset: one object of string keys to integer arrays.
private struct StrategyParser {
    let bytes: [UInt8]
    let path: String
    var position = 0

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    private func fail(_ reason: String) -> WindowSearchError {
        .malformedStrategy(path: path, reason: reason + " at byte \(position)")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func expect(_ character: Character) throws(WindowSearchError) {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == character.asciiValue! else {
            throw fail("expected '\(character)'")
        }
        position += 1
    }

    /// Consumes `character` if it comes next (after whitespace).
    private mutating func take(_ character: Character) -> Bool {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == character.asciiValue! else { return false }
        position += 1
        return true
    }

    mutating func parse() throws(WindowSearchError) -> [(MaskStrategy.Key, Window)] {
        var result = [(MaskStrategy.Key, Window)]()
        try expect("{")
        if !take("}") {
            repeat {
                let key = try parseKey()
                try expect(":")
                result.append((key, try parseWindow(key: key)))
            } while take(",")
            try expect("}")
        }
        skipWhitespace()
        guard position == bytes.count else { throw fail("unexpected text after the object") }
        return result
    }

    private mutating func parseKey() throws(WindowSearchError) -> MaskStrategy.Key {
        try expect("\"")
        let start = position
        while position < bytes.count, bytes[position] != UInt8(ascii: "\"") { position += 1 }
        guard position < bytes.count else { throw fail("unterminated key") }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        position += 1
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { part in
            part.utf8.allSatisfy({ (48...57).contains($0) }) ? Int(part) : nil
        }
        guard parts.count == 3, numbers.count == 3 else {
            throw fail("key \"\(text)\" is not \"<step>_<layer>_<head>\" with non-negative integers")
        }
        return MaskStrategy.Key(step: numbers[0], layer: numbers[1], head: numbers[2])
    }

    private mutating func parseWindow(key: MaskStrategy.Key) throws(WindowSearchError) -> Window {
        try expect("[")
        var tiles = [Int]()
        repeat {
            skipWhitespace()
            let start = position
            while position < bytes.count, (48...57).contains(bytes[position]) { position += 1 }
            guard position > start, let value = Int(String(decoding: bytes[start..<position], as: UTF8.self)), value >= 1
            else { throw fail("window of \"\(key)\" must be an array of positive integers (tiles)") }
            tiles.append(value)
        } while take(",")
        try expect("]")
        guard (1...3).contains(tiles.count) else {
            throw fail("window of \"\(key)\" has \(tiles.count) sizes; give 1 to 3 (one per canvas axis)")
        }
        return Window(tiles: tiles)
    }
}
