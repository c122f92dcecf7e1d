/// Element types a tensor may be stored in.
public enum DType: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case float32, float16, bfloat16, float64
    case int8, int16, int32, int64, uint8, bool

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .float16, .bfloat16, .int16: return 2
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        default: return false
        }
    }

    /// Short names: f32, f16, bf16, f64, i8, i16, i32, i64, u8, bool.
    public var shortName: String {
        switch self {
        case .float32: return "f32"
        case .float16: return "f16"
        case .bfloat16: return "bf16"
        case .float64: return "f64"
        case .int8: return "i8"
        case .int16: return "i16"
        case .int32: return "i32"
        case .int64: return "i64"
        case .uint8: return "u8"
        case .bool: return "bool"
        }
    }

    public var description: String { shortName }

    /// Parses a short or long name (`bf16`, `bfloat16`, `fp16`, `half`, `f32`, `float`, …).
    public init?(name: String) {
        switch name.lowercased() {
        case "f32", "fp32", "float", "float32": self = .float32
        case "f16", "fp16", "half", "float16": self = .float16
        case "bf16", "bfloat16": self = .bfloat16
        case "f64", "fp64", "double", "float64": self = .float64
        case "i8", "int8": self = .int8
        case "i16", "int16": self = .int16
        case "i32", "int32": self = .int32
        case "i64", "int64": self = .int64
        case "u8", "uint8": self = .uint8
        case "bool": self = .bool
        default: return nil
        }
    }
}
