import Glibc

/// Read-only bytes of a whole file, memory-mapped, or of an in-memory buffer.
///
/// Mapping costs no copy: pages are read from disk when first touched, so opening a multi-GB file is
/// O(1) and reading one tensor touches only its bytes. The mapping is released when the last reference
/// goes away. Immutable after init, hence `Sendable`.
final class FileBytes: @unchecked Sendable {
    /// The file path, or a name for an in-memory buffer; used in error messages.
    let path: String
    let buffer: UnsafeRawBufferPointer
    private let mapped: Bool

    /// Maps the file at `path` read-only. Throws `.io` naming the failing call.
    init(mappingFileAt path: String) throws(TensorError) {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(path: path, operation: "fstat", errno: errno) }
        let size = Int(status.st_size)
        self.path = path
        if size == 0 {
            buffer = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw .io(path: path, operation: "mmap", errno: errno)
        }
        buffer = UnsafeRawBufferPointer(start: address, count: size)
        mapped = true
    }

    /// Copies `bytes` into a private buffer named `name`.
    init(copying bytes: [UInt8], name: String) {
        path = name
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        buffer = UnsafeRawBufferPointer(storage)
        mapped = false
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count)
        } else {
            buffer.deallocate()
        }
    }

    var count: Int { buffer.count }

    /// A copy of bytes `range` (already validated to lie inside the buffer).
    func copy(_ range: Range<Int>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: buffer[range]))
    }
}

/// The C library's message for `code`.
func systemErrorMessage(_ code: Int32) -> String {
    guard let message = strerror(code) else { return "unknown error" }
    return String(cString: message)
}
