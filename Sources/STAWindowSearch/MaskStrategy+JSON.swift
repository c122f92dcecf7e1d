import STAGeometry
import STATensors

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
    /// Cost: O(text length).
    public init(jsonText: String, path: String = "<text>") throws(WindowSearchError) {
        self.init()
        func fail(_ reason: String) -> WindowSearchError { .malformedStrategy(path: path, reason: reason) }
        let root: JSONValue
        do throws(JSONError) { root = try JSONValue.parse(jsonText) } catch { throw fail(error.description) }
        guard case let .object(entries) = root else { throw fail("the text is not a JSON object") }
        for (text, value) in entries {
            let parts = text.split(separator: "_", omittingEmptySubsequences: false)
            let numbers = parts.compactMap { part in part.utf8.allSatisfy { (48...57).contains($0) } ? Int(part) : nil }
            guard parts.count == 3, numbers.count == 3 else {
                throw fail("key \"\(text)\" is not \"<step>_<layer>_<head>\" with non-negative integers")
            }
            guard case let .array(items) = value else {
                throw fail("window of \"\(text)\" must be an array of positive integers (tiles)")
            }
            var tiles = [Int]()
            for item in items {
                guard let size = item.unsignedInteger, size >= 1, size <= UInt64(Int32.max) else {
                    throw fail("window of \"\(text)\" must be an array of positive integers (tiles)")
                }
                tiles.append(Int(size))
            }
            guard (1...3).contains(tiles.count) else {
                throw fail("window of \"\(text)\" has \(tiles.count) sizes; give 1 to 3 (one per canvas axis)")
            }
            self[step: numbers[0], layer: numbers[1], head: numbers[2]] = Window(tiles: tiles)
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

    /// Writes `jsonText` to `path`, replacing it atomically (a temporary file renamed into place; see
    /// `OutputFile`), so a failure leaves the previous file whole.
    public func write(path: String) throws(WindowSearchError) {
        do throws(TensorError) {
            try OutputFile.write(text: jsonText, to: path)
        } catch {
            throw .tensor(error)
        }
    }
}
