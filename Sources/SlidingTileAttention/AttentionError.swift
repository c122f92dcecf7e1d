/// Why an attention call was refused or failed. Every front end (the `sta` tool, the C interface, the
/// Python package) shows `description` unchanged.
public struct AttentionError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure, so that a front end can map it to its own status codes.
    public enum Kind: Sendable, Equatable {
        /// The call itself is wrong wherever it runs: a shape, dtype, head dim, scale, pointer or name.
        case invalidArgument
        /// The CPU kernel rejected the call.
        case cpu
        /// What the call needs is not on this machine: no CUDA driver, no device (or no such ordinal), no
        /// NVRTC or another CUDA library, a driver or NVRTC too old for a call, or a device that no kernel
        /// allowed runs the call on (architecture, shared memory). Nothing failed; installing or choosing
        /// something else would make the call work.
        case unavailable
        /// A CUDA call, a kernel compile, load or launch failed.
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
    static func unavailable(_ description: String) -> AttentionError { AttentionError(.unavailable, description) }
}
