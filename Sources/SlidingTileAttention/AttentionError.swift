/// Why an attention call was refused or failed. Every front end (the `sta` tool, the C interface, the
/// Python package) shows `description` unchanged.
public struct AttentionError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure, so that a front end can map it to its own status codes.
    public enum Kind: Sendable, Equatable {
        /// The call itself is wrong wherever it runs: a shape, dtype, head dim, scale, pointer or name.
        case invalidArgument
        /// The CPU kernel rejected the call.
        case cpu
        /// No CUDA driver, device or compiler; a kernel that does not run on this device; a compile,
        /// load or launch failure.
        case cuda
    }

    /// What kind of failure.
    public let kind: Kind
    /// What was wrong and what is allowed.
    public let description: String

    /// An error of `kind` with the message `description`.
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func invalidArgument(_ description: String) -> AttentionError { AttentionError(.invalidArgument, description) }
    static func cuda(_ description: String) -> AttentionError { AttentionError(.cuda, description) }
}
