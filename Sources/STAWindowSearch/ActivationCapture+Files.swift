#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ActivationCapture {
    /// The capture files named by `sources`: a file stands for itself; a directory for its
    /// `*.safetensors` entries (not recursive), sorted by name. Throws for a path that does not exist
    /// and for a directory without captures. Cost: one directory listing per directory.
    public static func files(in sources: [String]) throws(WindowSearchError) -> [String] {
        var files = [String]()
        for source in sources {
            var status = stat()
            guard stat(source, &status) == 0 else { throw .io(path: source, operation: "stat", errno: errno) }
            guard (status.st_mode & S_IFMT) == S_IFDIR else {
                files.append(source)
                continue
            }
            guard let directory = opendir(source) else { throw .io(path: source, operation: "opendir", errno: errno) }
            defer { closedir(directory) }
            var names = [String]()
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasSuffix(".safetensors"), !name.hasPrefix(".") { names.append(name) }
            }
            guard !names.isEmpty else { throw .emptyDirectory(path: source) }
            let prefix = source.hasSuffix("/") ? source : source + "/"
            files += names.sorted().map { prefix + $0 }
        }
        return files
    }
}

extension ActivationCapture {
    /// Asks the OS to read q, k and v of this capture into the page cache in the background
    /// (madvise MADV_WILLNEED on their pages), so that a later `withStoredBytes` finds them in memory.
    /// Returns at once; a failure only loses the read-ahead. Cost: none on the calling thread.
    public func adviseWillNeed() {
        let page = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))
        for name in Self.tensorNames {
            _ = try? withStoredBytes(of: name) { bytes in
                guard let base = bytes.baseAddress, bytes.count > 0 else { return }
                let start = Int(bitPattern: base) / page * page
                let end = Int(bitPattern: base) + bytes.count
                _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_WILLNEED)
            }
        }
    }
}
