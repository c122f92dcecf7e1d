#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// NVRTC, the CUDA C++ compiler library, opened at run time.
public struct NVRTCCompiler: Sendable {
    let api: NVRTCAPI
    /// NVRTC's version, e.g. (13, 0).
    public let version: (major: Int, minor: Int)
    /// The library NVRTC was loaded from.
    public var libraryPath: String { api.library.path }

    init(api: NVRTCAPI) throws(CUDAError) {
        self.api = api
        var major: Int32 = 0
        var minor: Int32 = 0
        try api.check(api.nvrtcVersion(&major, &minor), "nvrtcVersion")
        version = (Int(major), Int(minor))
    }

    /// Loads NVRTC.
    ///
    /// With `path`, or else `$STA_NVRTC_PATH` (a file, or a directory holding libnvrtc), only that is
    /// tried. Otherwise, in order: `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64`, `/usr/local/cuda/lib64`
    /// (libnvrtc.so.13, .so.12, .so in each), the bare names libnvrtc.so.13, libnvrtc.so.12 and
    /// libnvrtc.so (the dynamic loader's own search), then the NVRTC of pip's nvidia wheels
    /// (`nvidia/cu13/lib`, `nvidia/cuda_nvrtc/lib`) under the active virtualenv or conda prefix,
    /// ~/.local, pyenv versions and the system Python directories. The default search runs once per
    /// process; its result is reused.
    ///
    /// Throws `nvrtcNotFound` listing what was tried, or `missingSymbol` for an NVRTC too old.
    public static func load(path: String? = nil) throws(CUDAError) -> NVRTCCompiler {
        if let path { return try load(candidates: candidates(forOverride: path), origin: "the path given") }
        return try defaultCompiler.get()
    }

    private static let defaultCompiler: Result<NVRTCCompiler, CUDAError> = {
        do throws(CUDAError) {
            if let path = environmentValue("STA_NVRTC_PATH") {
                return .success(try load(candidates: candidates(forOverride: path), origin: "STA_NVRTC_PATH"))
            }
            return .success(try load(candidates: defaultCandidates(), origin: nil))
        } catch {
            return .failure(error)
        }
    }()

    /// Opens the first of `candidates` that loads.
    static func load(candidates: [String], origin: String?) throws(CUDAError) -> NVRTCCompiler {
        switch DynamicLibrary.openFirst(candidates, prepare: preloadBuiltins(besides:)) {
        case .success(let library):
            return try NVRTCCompiler(api: NVRTCAPI(library: library))
        case .failure(let error):
            let source = origin.map { " (from \($0))" } ?? ""
            throw .nvrtcNotFound(
                "tried\(source) \(error.message). Install NVRTC (the CUDA toolkit, or pip install "
                    + "nvidia-cuda-nvrtc) or set STA_NVRTC_PATH to the full path of libnvrtc.so")
        }
    }

    static let libraryNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]

    /// NVRTC opens libnvrtc-builtins.so.<major>.<minor> by bare name when it compiles. For an NVRTC
    /// opened by path from a directory the loader does not search (a pip wheel, a toolkit without
    /// LD_LIBRARY_PATH), opening the builtins beside it first lets that later lookup find the
    /// already-loaded library by its soname.
    static func preloadBuiltins(besides candidate: String) {
        guard let slash = candidate.lastIndex(of: "/") else { return }
        let directory = String(candidate[..<slash])
        guard FileIO.isDirectory(directory) else { return }
        for builtins in globPaths(directory + "/libnvrtc-builtins.so.*").sorted(by: >) {
            if case .success = DynamicLibrary.open(builtins) { return }
        }
    }

    static func candidates(forOverride path: String) -> [String] {
        var status = stat()
        if stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR {
            return libraryNames.map { path + "/" + $0 }
        }
        return [path]
    }

    /// The default search list (see `load(path:)`).
    static func defaultCandidates() -> [String] {
        var result: [String] = []
        var directories: [String] = []
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environmentValue(variable) { directories.append(root + "/lib64") }
        }
        directories.append("/usr/local/cuda/lib64")
        for directory in directories {
            for name in libraryNames { result.append(directory + "/" + name) }
        }
        result += libraryNames
        result += pythonWheelCandidates(["nvidia/cu13/lib/libnvrtc.so.*", "nvidia/cuda_nvrtc/lib/libnvrtc.so.*"])
        var seen = Set<String>()
        return result.filter { seen.insert($0).inserted }
    }

    /// Files of pip's nvidia wheels matching `wheelPatterns` (relative to site-packages) under the usual
    /// Python prefixes, found with glob(3).
    static func pythonWheelCandidates(_ wheelPatterns: [String]) -> [String] {
        var prefixes: [String] = []
        for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let root = environmentValue(variable) { prefixes.append(root + "/lib/python3*/site-packages") }
        }
        if let home = environmentValue("HOME") {
            prefixes.append(home + "/.local/lib/python3*/site-packages")
            prefixes.append(
                (environmentValue("PYENV_ROOT") ?? home + "/.pyenv") + "/versions/*/lib/python3*/site-packages")
        }
        prefixes += [
            "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
            "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
            "/opt/conda/lib/python3*/site-packages",
        ]
        var result: [String] = []
        for prefix in prefixes {
            for wheel in wheelPatterns {
                result += globPaths(prefix + "/" + wheel).sorted(by: >)
            }
        }
        return result
    }

    static func globPaths(_ pattern: String) -> [String] {
        var matches = glob_t()
        defer { globfree(&matches) }
        guard glob(pattern, 0, nil, &matches) == 0 else { return [] }
        var paths: [String] = []
        for index in 0..<Int(matches.gl_pathc) {
            if let path = matches.gl_pathv[index] { paths.append(String(cString: path)) }
        }
        return paths
    }

    /// Compiles CUDA C++ `source` (named `sourceName` in diagnostics) with NVRTC `options`.
    ///
    /// Produces a CUBIN (an ELF image for one GPU) when the options name a real architecture
    /// (`-arch=sm_90a`, `--gpu-architecture=sm_80`, or `-arch` followed by `sm_…`), PTX text
    /// otherwise. `headers` are made available to `#include "name"`. Add `--ptxas-options=-v` to get
    /// `CompiledKernel.resourceUsage`. Costs NVRTC's compile time (about 0.1–10 s).
    ///
    /// Throws `compile` with NVRTC's log when the source does not compile, `nvrtc` for other failures
    /// (such as an unknown option, with the log appended).
    public func compile(
        source: String, sourceName: String, options: [String],
        headers: [(name: String, source: String)] = []
    ) throws(CUDAError) -> CompiledKernel {
        let api = self.api
        var program: OpaquePointer? = nil
        let created = withCStringArray(headers.map(\.source)) { headerSources in
            withCStringArray(headers.map(\.name)) { headerNames in
                api.nvrtcCreateProgram(&program, source, sourceName, Int32(headers.count), headerSources, headerNames)
            }
        }
        try api.check(created, "nvrtcCreateProgram")
        defer { _ = api.nvrtcDestroyProgram(&program) }

        let compiled = withCStringArray(options) { api.nvrtcCompileProgram(program, Int32(options.count), $0) }
        let logBytes = try api.bytes(
            of: program, size: api.nvrtcGetProgramLogSize, sizeName: "nvrtcGetProgramLogSize",
            copy: api.nvrtcGetProgramLog, copyName: "nvrtcGetProgramLog", dropTrailingNUL: true)
        let log = String(decoding: logBytes, as: UTF8.self)
        if compiled == NVRTCAPI.errorCompilation { throw .compile(sourceName: sourceName, log: log) }
        if compiled != 0 {
            throw api.error(
                compiled, function: "nvrtcCompileProgram(\(sourceName))", detail: log.trimmingTrailingWhitespace)
        }

        let format: CompiledKernel.Format =
            Self.targetArchitecture(in: options)?.hasPrefix("sm_") == true ? .cubin : .ptx
        let image: [UInt8]
        switch format {
        case .cubin:
            image = try api.bytes(
                of: program, size: api.nvrtcGetCUBINSize, sizeName: "nvrtcGetCUBINSize",
                copy: api.nvrtcGetCUBIN, copyName: "nvrtcGetCUBIN", dropTrailingNUL: false)
        case .ptx:
            // PTX keeps its terminating NUL: cuModuleLoadData reads PTX as a C string.
            image = try api.bytes(
                of: program, size: api.nvrtcGetPTXSize, sizeName: "nvrtcGetPTXSize",
                copy: api.nvrtcGetPTX, copyName: "nvrtcGetPTX", dropTrailingNUL: false)
        }
        return CompiledKernel(image: image, log: log, format: format)
    }

    /// The value of the last architecture option (`-arch=X`, `--gpu-architecture=X`, `-arch X`,
    /// `--gpu-architecture X`), or nil when there is none.
    static func targetArchitecture(in options: [String]) -> String? {
        var result: String? = nil
        var index = options.startIndex
        while index < options.endIndex {
            let option = options[index]
            for flag in ["-arch", "--gpu-architecture"] {
                if option.hasPrefix(flag + "=") {
                    result = String(option.dropFirst(flag.count + 1))
                } else if option == flag, index + 1 < options.endIndex {
                    result = options[index + 1]
                    index += 1
                }
            }
            index += 1
        }
        return result
    }
}
