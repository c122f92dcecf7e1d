import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `bytes` to `path`, replacing it; a failure names the path and the system's reason.
func writeBytes(_ bytes: [UInt8], to path: String) throws {
    guard let file = fopen(path, "wb") else {
        throw ValidationError("cannot write '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    guard written == bytes.count else {
        throw ValidationError("cannot write '\(path)': \(String(cString: strerror(errno)))")
    }
}

func writeText(_ text: String, to path: String) throws {
    try writeBytes(Array(text.utf8), to: path)
}

/// The contents of the text file at `path` (at most `limit` bytes); a failure names the path and the
/// system's reason.
func readText(_ path: String, limit: Int = 16 << 20) throws -> String {
    guard let file = fopen(path, "rb") else {
        throw ValidationError("cannot read '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes = [UInt8](repeating: 0, count: limit + 1)
    let count = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, limit + 1, file) }
    guard ferror(file) == 0 else { throw ValidationError("cannot read '\(path)': \(String(cString: strerror(errno)))") }
    guard count <= limit else { throw ValidationError("'\(path)' is larger than \(limit) bytes; is it the right file?") }
    return String(decoding: bytes[..<count], as: UTF8.self)
}
