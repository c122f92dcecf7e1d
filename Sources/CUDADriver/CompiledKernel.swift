/// The output of one NVRTC compilation.
public struct CompiledKernel: Sendable {
    /// What `image` holds.
    public enum Format: Sendable, Equatable {
        /// An ELF CUBIN for one architecture, loadable without JIT.
        case cubin
        /// PTX text including its terminating NUL; the driver JIT-compiles it at load.
        case ptx
    }

    /// The CUBIN or PTX bytes, ready for `CUDAModule(context:image:)`.
    public let image: [UInt8]
    /// NVRTC's log (warnings, and ptxas statistics when compiled with `--ptxas-options=-v`).
    public let log: String
    public let format: Format

    public init(image: [UInt8], log: String, format: Format) {
        self.image = image
        self.log = log
        self.format = format
    }

    /// Per-kernel resources reported by `ptxas -v` in `log`; empty without `--ptxas-options=-v`.
    public var resourceUsage: [KernelResourceUsage] { KernelResourceUsage.parse(ptxasLog: log) }

    static func isELF(_ image: [UInt8]) -> Bool {
        image.count >= 4 && image[0] == 0x7F && image[1] == 0x45 && image[2] == 0x4C && image[3] == 0x46
    }
}

/// What ptxas reported for one kernel (entry function).
public struct KernelResourceUsage: Sendable, Equatable {
    /// The kernel's (mangled) name.
    public var functionName: String
    /// The target ptxas compiled for, e.g. "sm_90a".
    public var architecture: String
    /// Registers per thread.
    public var registers: Int = 0
    /// Static shared memory per block, in bytes.
    public var sharedBytes: Int = 0
    /// Stack frame per thread, in bytes.
    public var stackFrameBytes: Int = 0
    /// Bytes stored to local memory because registers ran out, per thread.
    public var spillStoreBytes: Int = 0
    /// Bytes loaded back from spills, per thread.
    public var spillLoadBytes: Int = 0
    /// True when ptxas serialised the kernel's wgmma instructions (a C75xx "Potential Performance Loss"
    /// note: every asynchronous tensor-core product then waits for the previous one).
    public var serializesWGMMA = false

    public init(functionName: String, architecture: String) {
        self.functionName = functionName
        self.architecture = architecture
    }

    /// True when ptxas spilled registers to local memory.
    public var spills: Bool { spillStoreBytes > 0 || spillLoadBytes > 0 }

    /// Parses the `ptxas info` lines of an NVRTC log:
    ///
    ///     ptxas info    : Compiling entry function 'k' for 'sm_90a'
    ///     ptxas info    : Function properties for k
    ///         0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ///     ptxas info    : Used 10 registers, used 0 barriers, 1024 bytes smem, 380 bytes cmem[0]
    ///
    /// "Function properties" lines of non-entry functions are ignored. Unrecognised lines are skipped. A
    /// line "… wgmma.mma_async instructions are serialized … in the function 'k'" sets `serializesWGMMA`.
    static func parse(ptxasLog log: String) -> [KernelResourceUsage] {
        var entries: [KernelResourceUsage] = []
        var frames: [String: (stack: Int, stores: Int, loads: Int)] = [:]
        var serialized: Set<String> = []
        var propertiesOf: String? = nil
        for rawLine in log.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: " \t")
            if line.contains("wgmma.mma_async instructions are serialized"), let rest = line.after("in the function '") {
                serialized.insert(String(rest.prefix { $0 != "'" }))
            } else if let rest = line.after("Compiling entry function '") {
                let name = rest.prefix { $0 != "'" }
                let architecture = rest.after("for '").map { String($0.prefix { $0 != "'" }) } ?? ""
                entries.append(KernelResourceUsage(functionName: String(name), architecture: architecture))
                propertiesOf = nil
            } else if let rest = line.after("Function properties for ") {
                propertiesOf = String(rest).trimmingCharacters(in: " :")
            } else if line.contains("bytes stack frame"), let name = propertiesOf {
                let counts = Self.counts(in: line)
                frames[name] = (counts["stack frame"] ?? 0, counts["spill stores"] ?? 0, counts["spill loads"] ?? 0)
                propertiesOf = nil
            } else if let rest = line.after("Used "), !entries.isEmpty {
                let counts = Self.counts(in: "Used " + rest)
                entries[entries.count - 1].registers = counts["registers"] ?? 0
                entries[entries.count - 1].sharedBytes = counts["smem"] ?? 0
            }
        }
        for index in entries.indices {
            entries[index].serializesWGMMA = serialized.contains(entries[index].functionName)
            if let frame = frames[entries[index].functionName] {
                entries[index].stackFrameBytes = frame.stack
                entries[index].spillStoreBytes = frame.stores
                entries[index].spillLoadBytes = frame.loads
            }
        }
        return entries
    }

    /// "Used 10 registers, 8 bytes smem" → ["registers": 10, "smem": 8]: each comma-separated piece's
    /// number keyed by the words after it (skipping "bytes").
    private static func counts(in line: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for piece in line.split(separator: ",") {
            let words = piece.split(separator: " ").filter { $0 != "Used" && $0 != "used" }
            guard let numberIndex = words.firstIndex(where: { Int($0) != nil }), let number = Int(words[numberIndex])
            else { continue }
            let key = words[(numberIndex + 1)...].filter { $0 != "bytes" }.joined(separator: " ")
            result[key] = number
        }
        return result
    }
}

extension StringProtocol {
    /// The text after the first occurrence of `marker`, or nil.
    func after(_ marker: String) -> SubSequence? {
        guard let range = firstRange(of: marker) else { return nil }
        return self[range.upperBound...]
    }

    func trimmingCharacters(in set: String) -> String {
        var view = Substring(self)
        while let first = view.first, set.contains(first) { view.removeFirst() }
        while let last = view.last, set.contains(last) { view.removeLast() }
        return String(view)
    }
}
