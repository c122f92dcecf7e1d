import STACPUKernels
import STAGeometry
import STATensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a capture, a search set-up or a mask strategy was rejected. Each case's `description` names what
/// was wrong and what is allowed.
public enum WindowSearchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The capture file lacks tensor `name` (q, k and v are all required).
    case missingTensor(path: String, name: String, present: [String])
    /// Tensor `name` is not [B, H, S, D] with S the layout's sequence length, or q, k and v differ.
    case shapeMismatch(path: String, name: String, shape: [Int], expected: String)
    /// Tensor `name` has an integer or bool dtype.
    case notFloatingPoint(path: String, name: String, dtype: DType)
    /// Metadata key `key` is absent, or does not hold what it must (a non-negative integer for
    /// `step` and `layer`, a non-empty string for `prompt`).
    case badMetadata(path: String, key: String, value: String?)
    /// A directory given as a capture source holds no `.safetensors` file.
    case emptyDirectory(path: String)
    /// Two captures of the same layer have different head counts.
    case headCountMismatch(layer: Int, expected: Int, actual: Int, path: String)
    /// No candidate windows were given, or a candidate is invalid for the layout.
    case badCandidates(String)
    /// The full-step count is negative.
    case negativeFullSteps(Int)
    /// The density budget is outside (0, 1].
    case densityBudgetOutOfRange(Double)
    /// Even the sparsest option of every head exceeds the density budget.
    case densityBudgetInfeasible(step: Int, layer: Int, budget: Double, minimum: Double)
    /// The error tolerance is negative or not finite.
    case toleranceOutOfRange(Double)
    /// No capture was measured.
    case noCaptures
    /// A strategy file (or text) is not the flat `{"<step>_<layer>_<head>": [kt, kh, kw]}` object.
    case malformedStrategy(path: String, reason: String)
    /// A strategy has no window for this (step, layer), or its heads are not 0..<n.
    case missingStrategyEntry(step: Int, layer: Int, reason: String)
    /// A tensor file could not be read or written.
    case tensor(TensorError)
    /// The CPU attention kernel rejected a call.
    case attention(CPUAttentionError)
    /// A caller-supplied attention runner failed or returned the wrong number of elements.
    case backend(String)
    /// The GPU search found no CUDA driver, NVRTC or device (the CPU search still works).
    case unavailable(String)
    /// A layout or window was rejected.
    case geometry(GeometryError)
    /// A system call on a file or directory failed with `errno`.
    case io(path: String, operation: String, errno: Int32)
    /// Tensor `name` of a capture holds NaN or ±∞ (first at `index`, [b, h, s, d]; `count` in all), or a
    /// value outside the fp32 range; no window error can be measured on it.
    case nonFiniteActivation(path: String, name: String, index: [Int], value: Double, count: Int)
    /// The attention output of a capture under `window` was not finite although its inputs were (a
    /// backend's overflow); the error of that window cannot be measured.
    case nonFiniteOutput(path: String, window: String)
    /// The GPU search cannot run a capture (a head dim or shape no CUDA kernel takes, a device too old);
    /// `reason` is the kernel selection's message. The CPU search measures any capture.
    case deviceCannotMeasure(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingTensor(path, name, present):
            return "capture '\(path)' has no tensor '\(name)'; a capture holds tensors q, k and v "
                + "([B, H, S, D] each), it has \(present.isEmpty ? "none" : present.joined(separator: ", "))"
        case let .shapeMismatch(path, name, shape, expected):
            return "capture '\(path)': tensor '\(name)' has shape \(shape); expected \(expected)"
        case let .notFloatingPoint(path, name, dtype):
            return "capture '\(path)': tensor '\(name)' has dtype \(dtype); q, k and v must be F32, F16, BF16 or F64"
        case let .badMetadata(path, key, value):
            let what = key == "prompt" ? "a non-empty string (a prompt id)" : "a non-negative integer written as a string"
            return "capture '\(path)': metadata '\(key)' is "
                + (value.map { "\"\($0)\"" } ?? "missing") + "; it must be \(what) (keys: step, layer, prompt)"
        case let .emptyDirectory(path):
            return "directory '\(path)' holds no .safetensors capture"
        case let .headCountMismatch(layer, expected, actual, path):
            return "capture '\(path)' has \(actual) heads but other captures of layer \(layer) have \(expected); "
                + "every capture of a layer must have the same heads"
        case let .badCandidates(reason):
            return "candidate windows: \(reason)"
        case let .negativeFullSteps(count):
            return "full-step count is \(count); it must be 0 or more"
        case let .densityBudgetOutOfRange(budget):
            return "density budget is \(budget); it must be in (0, 1] (mean key-tile density over heads)"
        case let .densityBudgetInfeasible(step, layer, budget, minimum):
            return "density budget \(budget) cannot be met at step \(step), layer \(layer): the sparsest candidates "
                + "give a mean density of \(minimum); raise the budget or add sparser candidates"
        case let .toleranceOutOfRange(tolerance):
            return "error tolerance is \(tolerance); it must be a finite number ≥ 0 (relative L2 error)"
        case .noCaptures:
            return "no capture was given; pass .safetensors files or directories of them"
        case let .malformedStrategy(path, reason):
            return "mask strategy '\(path)' is malformed: \(reason); expected a flat JSON object "
                + "{\"<step>_<layer>_<head>\": [kt, kh, kw], ...} with windows in tiles"
        case let .missingStrategyEntry(step, layer, reason):
            return "mask strategy has no usable windows for step \(step), layer \(layer): \(reason)"
        case let .tensor(error):
            return error.description
        case let .attention(error):
            return error.description
        case let .backend(reason):
            return "attention backend: \(reason)"
        case let .unavailable(reason):
            return "attention backend unavailable: \(reason)"
        case let .geometry(error):
            return error.description
        case let .io(path, operation, errno):
            return "\(operation) of '\(path)' failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case let .nonFiniteActivation(path, name, index, value, count):
            return "capture '\(path)': tensor '\(name)' holds \(count) non-finite value\(count == 1 ? "" : "s") "
                + "(first \(value) at [b, h, s, d] = \(index)); the search needs finite q, k and v "
                + "(within the fp32 range) to measure window errors, so fix or drop this capture"
        case let .nonFiniteOutput(path, window):
            return "capture '\(path)': the attention output under window \(window) is not finite although q, k "
                + "and v are; the backend overflowed, so this capture's window errors cannot be measured"
        case let .deviceCannotMeasure(path, reason):
            return "capture '\(path)' cannot be measured on the GPU: \(reason); the CPU search (without --gpu) "
                + "measures any head dim"
        }
    }
}
