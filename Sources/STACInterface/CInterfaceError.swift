import SlidingTileAttention

/// Why a call of the C interface failed: a status code of `sta.h` and a message for the caller.
struct CInterfaceError: Error, Sendable, CustomStringConvertible {
    /// The status codes of `sta.h` (`STA_ERROR_*`).
    enum Code: Int32, Sendable {
        case invalidArgument = 1
        case geometry = 2
        case invalidHandle = 3
        case cpu = 4
        case cuda = 5
    }

    let code: Code
    let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    static func invalidArgument(_ message: String) -> CInterfaceError { CInterfaceError(.invalidArgument, message) }

    /// The status and message of an engine's refusal: its text unchanged.
    init(_ error: AttentionError) {
        switch error.kind {
        case .invalidArgument: self.init(.invalidArgument, error.description)
        case .cpu: self.init(.cpu, error.description)
        // sta.h keeps one CUDA status for both: the message says which.
        case .unavailable, .cuda: self.init(.cuda, error.description)
        }
    }
}

/// `body`'s result, with an engine error turned into its status code (message unchanged).
@discardableResult
func interface<T>(_ body: () throws(AttentionError) -> T) throws(CInterfaceError) -> T {
    do throws(AttentionError) {
        return try body()
    } catch {
        throw CInterfaceError(error)
    }
}

/// A size argument as an `Int` (the engine checks its range and names it in its message).
func size(_ value: Int64, _ name: String) throws(CInterfaceError) -> Int {
    guard let int = Int(exactly: value) else { throw .invalidArgument("\(name) is \(value); it does not fit this platform's Int") }
    return int
}

/// Status code of success (`STA_OK`).
let statusOK: Int32 = 0

/// Copies `message` into the caller's buffer of `length` bytes as UTF-8, truncated to fit (at a
/// character boundary) and NUL-terminated. Does nothing when `buffer` is nil or `length` is not
/// positive. Cost: O(message length).
func writeMessage(_ message: String, to buffer: UnsafeMutablePointer<CChar>?, length: Int) {
    guard let buffer, length > 0 else { return }
    var bytes = Array(message.utf8)
    if bytes.count > length - 1 {
        bytes.removeLast(bytes.count - (length - 1))
        // Do not leave half of a multi-byte character at the end.
        while let last = bytes.last, last & 0xC0 == 0x80 { bytes.removeLast() }
        if let last = bytes.last, last & 0xC0 == 0xC0 { bytes.removeLast() }
    }
    for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[bytes.count] = 0
}

/// Runs `body`, turning a thrown `CInterfaceError` into its status code and message. Every exported
/// function goes through here, so none of them throws across the C boundary.
func withStatus(
    error buffer: UnsafeMutablePointer<CChar>?, length: Int, _ body: () throws(CInterfaceError) -> Void
) -> Int32 {
    do throws(CInterfaceError) {
        try body()
        writeMessage("", to: buffer, length: length)
        return statusOK
    } catch {
        writeMessage(error.description, to: buffer, length: length)
        return error.code.rawValue
    }
}

// MARK: Argument checks

/// `pointer`, or `invalidArgument` naming `name` when it is nil.
func required<P>(_ pointer: P?, _ name: String) throws(CInterfaceError) -> P {
    guard let pointer else { throw .invalidArgument("\(name) is NULL; pass a valid pointer") }
    return pointer
}

/// `value` as an `Int` when it lies in `range`, else `invalidArgument` naming `name` and the range.
func checked(_ value: Int64, _ name: String, in range: ClosedRange<Int>) throws(CInterfaceError) -> Int {
    guard let int = Int(exactly: value), range.contains(int) else {
        let upper = range.upperBound == Int.max ? "" : "\(range.upperBound)"
        throw .invalidArgument("\(name) is \(value); it must be in \(range.lowerBound)...\(upper)")
    }
    return int
}

/// The product of `factors`, or `invalidArgument` naming `what` when it overflows `Int`.
func product(_ factors: [Int], _ what: String) throws(CInterfaceError) -> Int {
    var result = 1
    for factor in factors {
        let (next, overflow) = result.multipliedReportingOverflow(by: factor)
        guard !overflow else {
            throw .invalidArgument(
                "\(what) (\(factors.map(String.init).joined(separator: " × "))) overflows a 64-bit size")
        }
        result = next
    }
    return result
}
