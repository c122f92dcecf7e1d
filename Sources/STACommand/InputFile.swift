#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import STATensors

/// The text of the file at `path`, at most `limit` bytes. Throws `TensorError.io` (exit 66 when it
/// cannot be opened, 74 when reading fails) or a usage error for a file over the limit.
func readTextFile(_ path: String, limit: Int = 16 << 20) throws -> String {
    guard let file = fopen(path, "rb") else { throw TensorError.io(path: path, operation: "open", errno: errno) }
    defer { fclose(file) }
    var bytes = [UInt8](repeating: 0, count: limit + 1)
    let count = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, limit + 1, file) }
    guard ferror(file) == 0 else { throw TensorError.io(path: path, operation: "read", errno: errno) }
    guard count <= limit else { throw UsageError("\(path) is larger than \(limit) bytes; give a `sta bench --json` file") }
    return String(decoding: bytes[..<count], as: UTF8.self)
}
