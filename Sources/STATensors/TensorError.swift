/// Why a tensor, a conversion or a tensor file was rejected. Each case's `description` names what was
/// wrong and what is allowed; file cases name the file.
public enum TensorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A shape has a negative dimension, or its element count overflows `Int`.
    case invalidShape([Int])
    /// `count` elements were given for a shape that holds `expected`.
    case elementCountMismatch(shape: [Int], expected: Int, actual: Int)
    /// `actual` bytes were given for a tensor of `shape` and `dtype` that needs `expected`.
    case byteCountMismatch(shape: [Int], dtype: DType, expected: Int, actual: Int)
    /// Element `index` (value `value`) cannot be stored exactly in the integer or bool dtype `dtype`.
    case notRepresentable(index: Int, value: Double, dtype: DType)
    /// A `.npy` file (or buffer) was rejected.
    case numpy(path: String, problem: NumpyProblem)
    /// A `.safetensors` file (or buffer) was rejected.
    case safetensors(path: String, problem: SafetensorsProblem)
    /// A system call on a file failed with `errno`.
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case let .invalidShape(shape):
            return "shape \(shape) is invalid; every dimension must be 0 or more and the element count must fit in Int"
        case let .elementCountMismatch(shape, expected, actual):
            return "\(actual) elements were given for shape \(shape), which holds \(expected)"
        case let .byteCountMismatch(shape, dtype, expected, actual):
            return "\(actual) bytes were given for a \(dtype) tensor of shape \(shape), which needs \(expected) "
                + "(\(dtype.byteCount) bytes per element)"
        case let .notRepresentable(index, value, dtype):
            return "element \(index) (\(value)) cannot be stored exactly as \(dtype); "
                + "integer conversions accept only integral values inside the target range"
        case let .numpy(path, problem):
            return problem.description(path: path)
        case let .safetensors(path, problem):
            return problem.description(path: path)
        case let .io(path, operation, errno):
            return "\(operation) of file '\(path)' failed: \(systemErrorMessage(errno)) (errno \(errno))"
        }
    }
}

/// What was wrong with a `.npy` file.
public enum NumpyProblem: Error, Equatable, Sendable {
    /// The file does not start with `\x93NUMPY`.
    case badMagic
    /// The format version is not 1.0, 2.0 or 3.0.
    case unsupportedVersion(major: Int, minor: Int)
    /// The file ends inside the preamble or the header: it is `fileSize` bytes but the header ends at `headerEnd`.
    case headerTooShort(fileSize: Int, headerEnd: Int)
    /// The header dictionary could not be parsed.
    case malformedHeader(String)
    /// The dtype descriptor is not one of the supported little-endian numeric types.
    case unsupportedDescr(String)
    /// The array is stored column-major.
    case fortranOrder
    /// The data after the header is shorter (or longer) than the shape and dtype need.
    case dataSizeMismatch(expected: Int, actual: Int)
    /// bfloat16 has no `.npy` representation.
    case bfloat16NotRepresentable

    /// The dtype descriptors this library reads; `|` and `<` are both accepted for one-byte types.
    public static let supportedDescrs = ["<f4", "<f2", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "|b1"]

    func description(path: String) -> String {
        let file = "file '\(path)'"
        switch self {
        case .badMagic:
            return "\(file) is not a .npy file: it does not start with the magic bytes \\x93NUMPY"
        case let .unsupportedVersion(major, minor):
            return "\(file) has .npy format version \(major).\(minor); supported versions are 1.0, 2.0 and 3.0"
        case let .headerTooShort(fileSize, headerEnd):
            return "\(file) is \(fileSize) bytes but its .npy header needs bytes 0..<\(headerEnd); the file is truncated"
        case let .malformedHeader(reason):
            return "\(file) has a malformed .npy header: \(reason); expected a dict with 'descr', "
                + "'fortran_order' and 'shape', e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        case let .unsupportedDescr(descr):
            return "\(file) has dtype '\(descr)'; supported dtypes are \(Self.supportedDescrs.joined(separator: ", ")) "
                + "(little-endian; big-endian, object, structured and string dtypes are not supported)"
        case .fortranOrder:
            return "\(file) stores its array in Fortran (column-major) order; only C order (fortran_order: False) "
                + "is supported: save np.ascontiguousarray(a)"
        case let .dataSizeMismatch(expected, actual):
            return "\(file) has \(actual) data bytes after its header but its shape and dtype need \(expected)"
                + (actual < expected ? "; the file is truncated" : "")
        case .bfloat16NotRepresentable:
            return "bfloat16 cannot be written to .npy ('\(path)'): numpy has no bfloat16 dtype; "
                + "write a .safetensors file (dtype BF16) instead, or convert the tensor to float32"
        }
    }
}

/// What was wrong with a `.safetensors` file.
public enum SafetensorsProblem: Error, Equatable, Sendable {
    /// The file is shorter than the 8-byte header length.
    case fileTooShort(fileSize: Int)
    /// The header length does not fit in the file (or exceeds the 100 MB limit).
    case headerLengthOutOfRange(headerLength: UInt64, fileSize: Int)
    /// The JSON header is not valid JSON or not the expected shape.
    case invalidHeader(String)
    /// A tensor entry lacks a field or has a field of the wrong type.
    case invalidEntry(tensor: String, reason: String)
    /// A tensor's dtype is not one this library supports.
    case unknownDType(tensor: String, dtype: String)
    /// A tensor's offsets are reversed or its bytes fall outside the file: it needs file bytes
    /// `begin..<end` but the file is `fileSize` bytes.
    case offsetsOutOfRange(tensor: String, begin: UInt64, end: UInt64, fileSize: Int)
    /// A tensor's byte range does not match prod(shape) · element size.
    case byteCountMismatch(tensor: String, expected: Int, actual: Int)
    /// Two tensors share bytes.
    case overlappingTensors(String, String)
    /// No tensor has this name.
    case noSuchTensor(String)
    /// The writer was given a name that cannot be stored (empty or `__metadata__`).
    case invalidTensorName(String)

    /// The dtype strings this library reads and writes.
    public static let supportedDTypes = ["F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64", "U8", "BOOL"]

    func description(path: String) -> String {
        let file = "file '\(path)'"
        switch self {
        case let .fileTooShort(fileSize):
            return "\(file) is \(fileSize) bytes, too short for a .safetensors file (8-byte header length, then a JSON header)"
        case let .headerLengthOutOfRange(headerLength, fileSize):
            return "\(file) is \(fileSize) bytes but declares a \(headerLength)-byte JSON header; "
                + "the header must fit in the file after the 8 length bytes (and be at most 100 MB)"
        case let .invalidHeader(reason):
            return "\(file) has an invalid .safetensors JSON header: \(reason)"
        case let .invalidEntry(tensor, reason):
            return "\(file): tensor '\(tensor)' \(reason); each entry needs \"dtype\" (string), "
                + "\"shape\" (array of non-negative integers) and \"data_offsets\" ([begin, end] integers)"
        case let .unknownDType(tensor, dtype):
            return "\(file): tensor '\(tensor)' has dtype \"\(dtype)\"; supported dtypes are "
                + Self.supportedDTypes.joined(separator: ", ")
        case let .offsetsOutOfRange(tensor, begin, end, fileSize):
            if begin > end {
                return "\(file): tensor '\(tensor)' has data_offsets with begin after end (file bytes \(begin) and \(end))"
            }
            return "\(file) is \(fileSize) bytes but tensor '\(tensor)' needs bytes \(begin)..<\(end); the file is truncated"
        case let .byteCountMismatch(tensor, expected, actual):
            return "\(file): tensor '\(tensor)' spans \(actual) bytes but its shape and dtype need \(expected)"
        case let .overlappingTensors(first, second):
            return "\(file): tensors '\(first)' and '\(second)' overlap; each tensor must have its own bytes"
        case let .noSuchTensor(name):
            return "\(file) has no tensor named '\(name)'"
        case let .invalidTensorName(name):
            return "tensor name '\(name)' cannot be written to '\(path)'; names must be non-empty and not \"__metadata__\""
        }
    }
}
