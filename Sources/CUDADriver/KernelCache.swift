#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory of compiled kernel images, so that NVRTC runs once per kernel, options, GPU and
/// toolchain rather than once per process.
///
/// Each entry is one file, `<16 hex digits>.kernel`, named by the 64-bit FNV-1a hash of the entry's
/// key text, and holding a small text header, the full key text and the image (see `encodeEntry`).
/// A lookup compares the stored key text with the wanted one byte for byte and checks the image's
/// hash, so a hash collision or a damaged file is a miss, never a wrong image. Entries are written
/// to a temporary file and renamed into place, so readers never see a partial entry. Failure to
/// create the directory or write an entry is ignored: the call still returns the compiled image.
public struct KernelCache: Sendable {
    /// The cache directory, or nil when none could be determined (then nothing is cached).
    public let directory: String?

    /// A cache in `directory`; by default `$STA_KERNEL_CACHE`, else `$XDG_CACHE_HOME/sta-kernels`,
    /// else `$HOME/.cache/sta-kernels`. The directory is created when the first entry is written.
    public init(directory: String? = nil) {
        self.directory = directory ?? Self.defaultDirectory(environment: environmentValue)
    }

    static func defaultDirectory(environment: (String) -> String?) -> String? {
        if let path = environment("STA_KERNEL_CACHE") { return path }
        if let path = environment("XDG_CACHE_HOME") { return path + "/sta-kernels" }
        if let home = environment("HOME") { return home + "/.cache/sta-kernels" }
        return nil
    }

    /// The compiled image of `source` for `architecture` (e.g. "sm_90a"), from the cache when present.
    ///
    /// `compiler` is called on every call (loading NVRTC is cheap after the first time) because NVRTC's
    /// version is part of the key; NVRTC compiles only on a miss. When `options` name no architecture,
    /// `--gpu-architecture=<architecture>` is added, so the image is a CUBIN for that architecture.
    /// `headers` are the files the source may `#include "name"`. The key covers the source, its name, the
    /// headers' names and contents, the options, the architecture, `driverVersion` and NVRTC's version.
    /// A hit costs reading one file.
    public func image(
        source: String, sourceName: String, headers: [(name: String, source: String)] = [], options: [String],
        architecture: String, driverVersion: Int, compiler: () throws(CUDAError) -> NVRTCCompiler
    ) throws(CUDAError) -> [UInt8] {
        try lookupOrCompile(
            source: source, sourceName: sourceName, headers: headers, options: options, architecture: architecture,
            driverVersion: driverVersion, compiler: compiler
        ).image
    }

    /// `image(…)`, also saying whether the image came from the cache.
    func lookupOrCompile(
        source: String, sourceName: String, headers: [(name: String, source: String)] = [], options: [String],
        architecture: String, driverVersion: Int, compiler: () throws(CUDAError) -> NVRTCCompiler
    ) throws(CUDAError) -> (image: [UInt8], hit: Bool) {
        let nvrtc = try compiler()
        var allOptions = options
        if NVRTCCompiler.targetArchitecture(in: options) == nil {
            allOptions.append("--gpu-architecture=\(architecture)")
        }
        let key = Self.keyText(
            source: source, sourceName: sourceName, headers: headers, options: allOptions, architecture: architecture,
            driverVersion: driverVersion, nvrtcVersion: nvrtc.version)
        return try lookupOrProduce(keyText: key) { () throws(CUDAError) -> [UInt8] in
            try nvrtc.compile(source: source, sourceName: sourceName, options: allOptions, headers: headers).image
        }
    }

    /// The key text of an entry: every input on its own line, each variable-length field preceded by
    /// its length in bytes so that no two different inputs give the same text. Headers (when there are
    /// any) follow the source, each as its name and its contents.
    static func keyText(
        source: String, sourceName: String, headers: [(name: String, source: String)] = [], options: [String],
        architecture: String, driverVersion: Int, nvrtcVersion: (major: Int, minor: Int)
    ) -> String {
        func field(_ name: String, _ value: String) -> String { "\(name) \(value.utf8.count)\n\(value)\n" }
        var text = "sta-kernel-key 1\n"
        text += field("architecture", architecture)
        text += "driver-version \(driverVersion)\n"
        text += "nvrtc-version \(nvrtcVersion.major).\(nvrtcVersion.minor)\n"
        text += "options \(options.count)\n"
        for option in options { text += field("option", option) }
        text += field("source-name", sourceName)
        text += field("source", source)
        if !headers.isEmpty {
            text += "headers \(headers.count)\n"
            for header in headers {
                text += field("header-name", header.name)
                text += field("header", header.source)
            }
        }
        return text
    }

    /// The cached image for `keyText`, or the result of `produce` (stored for next time).
    func lookupOrProduce(
        keyText: String, produce: () throws(CUDAError) -> [UInt8]
    ) throws(CUDAError) -> (image: [UInt8], hit: Bool) {
        if let image = load(keyText: keyText) { return (image, true) }
        let image = try produce()
        _ = store(keyText: keyText, image: image)
        return (image, false)
    }

    /// The path of the entry for `keyText`, or nil without a directory.
    func entryPath(keyText: String) -> String? {
        guard let directory else { return nil }
        return directory + "/" + FNV1a64.hex(FNV1a64.hash(keyText.utf8)) + ".kernel"
    }

    /// The image stored for exactly `keyText`, or nil (missing, unreadable, damaged, or another key).
    func load(keyText: String) -> [UInt8]? {
        guard let path = entryPath(keyText: keyText), let contents = FileIO.read(path) else { return nil }
        return Self.decodeEntry(contents, keyText: keyText)
    }

    /// Writes the entry for `keyText` atomically; returns false (and leaves no file behind) on failure.
    @discardableResult
    func store(keyText: String, image: [UInt8]) -> Bool {
        guard let directory, let path = entryPath(keyText: keyText) else { return false }
        guard FileIO.makeDirectories(directory) else { return false }
        return FileIO.writeAtomically(Self.encodeEntry(keyText: keyText, image: image), to: path)
    }

    static let magic = "sta-kernel-cache 1\n"

    /// An entry file: the magic line, `key-bytes N`, `image-bytes M`, `image-fnv1a <16 hex>` lines,
    /// then the N bytes of key text and the M bytes of image.
    static func encodeEntry(keyText: String, image: [UInt8]) -> [UInt8] {
        let key = Array(keyText.utf8)
        var header = magic
        header += "key-bytes \(key.count)\n"
        header += "image-bytes \(image.count)\n"
        header += "image-fnv1a \(FNV1a64.hex(FNV1a64.hash(image)))\n"
        return Array(header.utf8) + key + image
    }

    /// The image of an entry whose key text is exactly `keyText` and whose image hash matches.
    static func decodeEntry(_ contents: [UInt8], keyText: String) -> [UInt8]? {
        var cursor = contents[...]
        func line() -> String? {
            guard let end = cursor.firstIndex(of: 0x0A) else { return nil }
            let text = String(decoding: cursor[..<end], as: UTF8.self)
            cursor = cursor[(end + 1)...]
            return text
        }
        func value(_ name: String) -> String? {
            guard let text = line(), text.hasPrefix(name + " ") else { return nil }
            return String(text.dropFirst(name.count + 1))
        }
        guard line().map({ $0 + "\n" }) == magic,
            let keyCount = value("key-bytes").flatMap({ Int($0) }),
            let imageCount = value("image-bytes").flatMap({ Int($0) }),
            let imageHash = value("image-fnv1a"),
            keyCount >= 0, imageCount >= 0, cursor.count == keyCount + imageCount
        else { return nil }
        let key = cursor.prefix(keyCount)
        guard key.elementsEqual(keyText.utf8) else { return nil }
        let image = Array(cursor.dropFirst(keyCount))
        guard FNV1a64.hex(FNV1a64.hash(image)) == imageHash else { return nil }
        return image
    }
}

/// The 64-bit FNV-1a hash.
enum FNV1a64 {
    static func hash<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// 16 lowercase hex digits.
    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// Whole-file reads and atomic writes with POSIX calls.
enum FileIO {
    /// The contents of the regular file at `path`, or nil.
    static func read(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(status.st_size)
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var done = 0
            while done < size {
                let count = Glibc.read(descriptor, buffer.baseAddress! + done, size - done)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                done += count
            }
            failed = done != size
            initialized = done
        }
        return failed ? nil : bytes
    }

    /// Creates `path` and its missing parents (mode 0755). True when it exists as a directory.
    static func makeDirectories(_ path: String) -> Bool {
        if isDirectory(path) { return true }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return false }
        }
        return isDirectory(path)
    }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Writes `bytes` to a new temporary file beside `path`, then renames it over `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String) -> Bool {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let temporary = "\(path).\(getpid()).\(time.tv_sec).\(time.tv_nsec).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        var written = 0
        bytes.withUnsafeBytes { buffer in
            while written < buffer.count {
                let count = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                written += count
            }
        }
        let closed = close(descriptor) == 0
        guard written == bytes.count, closed, rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }
}
