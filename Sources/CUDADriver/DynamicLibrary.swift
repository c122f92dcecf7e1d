#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A shared library opened with `dlopen`. It is never closed: the function pointers resolved from it
/// stay valid for the life of the process.
struct DynamicLibrary: @unchecked Sendable {
    /// The name or path the library was opened with.
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens `path` (a file path, or a bare name for the dynamic loader's own search).
    /// Returns the loader's message on failure.
    static func open(_ path: String) -> Result<DynamicLibrary, DynamicLibraryError> {
        _ = dlerror()
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            return .failure(DynamicLibraryError(message: lastError() ?? "dlopen failed"))
        }
        return .success(DynamicLibrary(path: path, handle: handle))
    }

    /// Opens the first of `candidates` that loads. On failure returns one line per candidate with the
    /// loader's message.
    /// `prepare` runs before each attempt with the candidate about to be opened.
    static func openFirst(
        _ candidates: [String], prepare: (String) -> Void = { _ in }
    ) -> Result<DynamicLibrary, DynamicLibraryError> {
        var tried: [String] = []
        for candidate in candidates {
            prepare(candidate)
            switch open(candidate) {
            case .success(let library): return .success(library)
            case .failure(let error): tried.append("\(candidate) (\(error.message))")
            }
        }
        if tried.isEmpty { return .failure(DynamicLibraryError(message: "no candidate paths")) }
        return .failure(DynamicLibraryError(message: tried.joined(separator: "; ")))
    }

    /// The address of `name`, or nil when the library does not export it.
    func address(of name: String) -> UnsafeMutableRawPointer? {
        dlsym(handle, name)
    }

    /// `name` as a function of type `T` (a `@convention(c)` function type), or nil when absent.
    func function<T>(_ name: String, as type: T.Type) -> T? {
        guard let address = address(of: name) else { return nil }
        return unsafeBitCast(address, to: T.self)
    }

    /// `name` as a function of type `T`; throws `CUDAError.missingSymbol` when absent.
    func required<T>(_ name: String, as type: T.Type) throws(CUDAError) -> T {
        guard let value = function(name, as: type) else {
            throw CUDAError.missingSymbol(library: path, symbol: name)
        }
        return value
    }

    private static func lastError() -> String? {
        guard let message = dlerror() else { return nil }
        return String(cString: message)
    }
}

/// Why `dlopen` failed, in the loader's words.
struct DynamicLibraryError: Error {
    let message: String
}

/// The value of the environment variable `name`, or nil when unset or empty.
func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let string = String(cString: value)
    return string.isEmpty ? nil : string
}
