import ArgumentParser
import CUDADriver
import SlidingTileAttention
import STACUDAKernels
import STAGeometry
import STATensors
import STATooling
import STAWindowSearch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The exit status of `sta`, one per class of failure (the numbers of BSD's sysexits.h), documented in
/// docs/CLI.md.
enum ExitStatus: Int32, CaseIterable, Sendable {
    /// Everything worked and every check passed.
    case success = 0
    /// A check failed: `verify` or `demo` found a result outside its tolerance, `kernels` a spill.
    case checkFailed = 1
    /// Bad command line: an unknown option, a malformed or out-of-range value, a size above a limit, an
    /// option the chosen mode ignores.
    case usage = 64
    /// An input file is malformed (a capture, a strategy).
    case dataError = 65
    /// An input file does not exist or cannot be opened.
    case noInput = 66
    /// What the command needs is not there: no CUDA driver, no GPU, no NVRTC, a GPU too old.
    case unavailable = 69
    /// A CUDA call or a kernel compile failed.
    case internalError = 70
    /// An output file cannot be created (missing or read-only directory, an input given as output).
    case cannotCreate = 73
    /// Reading or writing a file failed part-way.
    case ioError = 74

    /// The status for `error`, decided by the error's type and kind, never by its message (69 for
    /// `AttentionError.Kind.unavailable`, `CUDAError.isUnavailable` and `STAKernelError.isUnavailable`).
    static func of(_ error: any Error) -> ExitStatus {
        switch error {
        case let code as ExitCode: return code == .success ? .success : (code == .validationFailure ? .usage : .checkFailed)
        case is ValidationError, is ShapeSyntax.ParseError, is GeometryError, is UsageError: return .usage
        case is OutputFile.Problem: return .cannotCreate
        case let error as TensorError: return of(error)
        case let error as WindowSearchError: return of(error)
        case let error as CUDAError: return of(error)
        case let error as STAKernelError:
            switch error {
            case .unsupportedHeadDim, .unsupportedDType, .invalidParameter: return .usage
            default: return error.isUnavailable ? .unavailable : .internalError
            }
        case let error as AttentionError:
            switch error.kind {
            case .invalidArgument: return .usage
            case .unavailable: return .unavailable
            case .cpu, .cuda: return .internalError
            }
        default:
            // ArgumentParser's own parse errors are not public types; they are usage errors.
            let name = String(reflecting: type(of: error))
            return name.hasPrefix("ArgumentParser.") ? .usage : .internalError
        }
    }

    static func of(_ error: TensorError) -> ExitStatus {
        switch error {
        case let .io(_, operation, code):
            if operation.hasPrefix("open") && !operation.contains("writing") {
                return code == ENOENT || code == EACCES || code == ENOTDIR ? .noInput : .ioError
            }
            if operation.contains("writing") || operation.contains("temporary") || operation.contains("rename") {
                return .cannotCreate
            }
            return .ioError
        case .numpy, .safetensors: return .dataError
        default: return .dataError
        }
    }

    static func of(_ error: WindowSearchError) -> ExitStatus {
        switch error {
        case let .tensor(tensor): return of(tensor)
        case let .io(_, _, code): return code == ENOENT || code == EACCES || code == ENOTDIR ? .noInput : .ioError
        case .geometry, .badCandidates, .negativeFullSteps, .densityBudgetOutOfRange, .toleranceOutOfRange:
            return .usage
        case .densityBudgetInfeasible, .deviceCannotMeasure: return .usage
        case .unavailable: return .unavailable
        case .backend: return .internalError
        default: return .dataError
        }
    }

    static func of(_ error: CUDAError) -> ExitStatus {
        if error.isUnavailable { return .unavailable }
        if case .invalidArgument = error { return .usage }
        return .internalError
    }
}

/// A command line that names options the chosen mode does not use, or combines options that exclude
/// each other. Exit status 64, no usage text (the message says what to drop).
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Rejects `given` options (their names, e.g. "--canvas") that `mode` does not use.
func rejectIgnored(_ given: [String], by mode: String) throws(UsageError) {
    guard !given.isEmpty else { return }
    let list = given.joined(separator: ", ")
    throw UsageError("\(mode) does not use \(list); drop \(given.count == 1 ? "it" : "them")")
}

/// A line on standard error (progress and warnings), so that standard output stays the report.
func progress(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Ends the process with `status`.
func terminate(_ status: Int32) -> Never {
    exit(status)
}
