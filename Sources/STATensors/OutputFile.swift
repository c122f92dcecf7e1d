#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Output files that are never left half-written and never overwrite an input.
///
/// `validate(_:inputs:)` checks an output path before any work starts: its directory exists and is
/// writable, the path is not a directory, and it is not the same file (device and inode, links
/// followed) as any input. `write(_:to:)` and `FileWriter` write a temporary file in the output's own
/// directory and rename it over the path only after every byte was written, flushed and closed, so a
/// full disk, an I/O error or a killed process leaves either the old file or the new one, never a
/// mixture; a failed write removes its temporary file.
public enum OutputFile {
    /// Why an output path was refused before writing.
    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        /// The path names the same file as an input.
        case sameAsInput(output: String, input: String)
        /// The directory that would hold the output does not exist or is not a directory.
        case noDirectory(output: String, directory: String)
        /// The directory exists but this user may not create files in it.
        case directoryNotWritable(output: String, directory: String)
        /// The path is an existing directory.
        case isDirectory(String)
        /// The path is empty.
        case emptyPath

        public var description: String {
            switch self {
            case let .sameAsInput(output, input):
                return "output '\(output)' is the input '\(input)'; refusing to overwrite an input: choose another output path"
            case let .noDirectory(output, directory):
                return "cannot write '\(output)': the directory '\(directory)' does not exist"
            case let .directoryNotWritable(output, directory):
                return "cannot write '\(output)': the directory '\(directory)' is not writable"
            case let .isDirectory(path):
                return "cannot write '\(path)': it is a directory; give a file path"
            case .emptyPath:
                return "the output path is empty; give a file path"
            }
        }
    }

    /// Checks that `path` can be written and is none of `inputs` (compared as files: same device and
    /// inode after following links, so `./a`, `a` and a link to `a` are the same file). Inputs that do
    /// not exist are ignored. Cost: a few `stat` calls.
    public static func validate(_ path: String, inputs: [String] = []) throws(Problem) {
        guard !path.isEmpty else { throw .emptyPath }
        var status = stat()
        if stat(path, &status) == 0 {
            if (status.st_mode & S_IFMT) == S_IFDIR { throw .isDirectory(path) }
            let special = (status.st_mode & S_IFMT) != S_IFREG
            for input in inputs {
                var other = stat()
                if stat(input, &other) == 0, other.st_dev == status.st_dev, other.st_ino == status.st_ino {
                    throw .sameAsInput(output: path, input: input)
                }
            }
            // A device or FIFO (/dev/stdout, a pipe) is written in place; its directory does not matter.
            if special { return }
        }
        let directory = directoryName(of: resolvedTarget(of: path))
        var directoryStatus = stat()
        guard stat(directory, &directoryStatus) == 0, (directoryStatus.st_mode & S_IFMT) == S_IFDIR else {
            throw .noDirectory(output: path, directory: directory)
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw .directoryNotWritable(output: path, directory: directory)
        }
    }

    /// Writes `bytes` to `path` atomically (see the type's documentation). Throws `TensorError.io`
    /// naming the path and the failing call.
    public static func write(_ bytes: [UInt8], to path: String) throws(TensorError) {
        let writer = try FileWriter(creating: path)
        try writer.write(bytes)
        try writer.close()
    }

    /// `write(Array(text.utf8), to: path)`.
    public static func write(text: String, to path: String) throws(TensorError) {
        try write(Array(text.utf8), to: path)
    }

    /// `path` with a final symbolic link resolved, so that writing through a link replaces the file it
    /// points to (in that file's directory) rather than the link.
    static func resolvedTarget(of path: String) -> String {
        var status = stat()
        guard lstat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFLNK,
            let resolved = realpath(path, nil)
        else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The directory part of `path` ("." for a bare file name, "/" for a file in the root).
    static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}

/// Writes byte chunks to a temporary file beside `path` (mode 0666 less the umask) and renames it over
/// `path` in `close()`, after `fsync`. A writer that is not closed (after an error) removes its
/// temporary file on deinit, leaving `path` as it was. A final symbolic link is followed (the file it
/// names is replaced); an existing device or FIFO is written in place, as there is nothing to rename.
final class FileWriter {
    let path: String
    /// The temporary file, or nil when writing in place.
    private let temporaryPath: String?
    private let descriptor: Int32
    private var isClosed = false

    init(creating path: String) throws(TensorError) {
        guard !path.isEmpty else { throw .io(path: path, operation: "open for writing", errno: ENOENT) }
        self.path = path
        var status = stat()
        if stat(path, &status) == 0 {
            if (status.st_mode & S_IFMT) == S_IFDIR { throw .io(path: path, operation: "open for writing", errno: EISDIR) }
            if (status.st_mode & S_IFMT) != S_IFREG {
                let descriptor = open(path, O_WRONLY | O_CLOEXEC)
                guard descriptor >= 0 else { throw .io(path: path, operation: "open for writing", errno: errno) }
                self.temporaryPath = nil
                self.descriptor = descriptor
                return
            }
        }
        let target = OutputFile.resolvedTarget(of: path)
        let directory = OutputFile.directoryName(of: target)
        let name = target.split(separator: "/").last.map(String.init) ?? target
        var descriptor: Int32 = -1
        var candidate = ""
        // A unique name: process id, clock and a counter; O_EXCL refuses an existing file (or link).
        for attempt in 0..<100 {
            var time = timespec()
            clock_gettime(CLOCK_REALTIME, &time)
            candidate = "\(directory)/.\(name).\(getpid()).\(time.tv_nsec).\(attempt).tmp"
            descriptor = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o666)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else { throw .io(path: path, operation: "create a temporary file beside", errno: errno) }
        self.temporaryPath = candidate
        self.destination = target
        self.descriptor = descriptor
    }

    /// Where the temporary file is renamed to: `path` with a final link resolved.
    private var destination: String = ""

    /// Writes all of `bytes`, retrying short writes and EINTR.
    func write(_ bytes: UnsafeRawBufferPointer) throws(TensorError) {
        var offset = 0
        while offset < bytes.count {
            #if canImport(Glibc)
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            #else
                let written = Darwin.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            #endif
            if written < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "write", errno: errno)
            }
            offset += written
        }
    }

    func write(_ bytes: [UInt8]) throws(TensorError) {
        let result: Result<Void, TensorError> = bytes.withUnsafeBytes { raw in
            do throws(TensorError) { try write(raw); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Flushes, closes and renames the temporary file over `path`, reporting a failed flush or close
    /// (which can reveal a failed delayed write); on failure the temporary file is removed.
    func close() throws(TensorError) {
        isClosed = true
        guard let temporaryPath else {
            #if canImport(Glibc)
                guard Glibc.close(descriptor) == 0 else { throw .io(path: path, operation: "close", errno: errno) }
            #else
                guard Darwin.close(descriptor) == 0 else { throw .io(path: path, operation: "close", errno: errno) }
            #endif
            return
        }
        let synced = fsync(descriptor) == 0
        let syncError = errno
        #if canImport(Glibc)
            let closed = Glibc.close(descriptor) == 0
        #else
            let closed = Darwin.close(descriptor) == 0
        #endif
        let closeError = errno
        guard synced else {
            unlink(temporaryPath)
            throw .io(path: path, operation: "flush", errno: syncError)
        }
        guard closed else {
            unlink(temporaryPath)
            throw .io(path: path, operation: "close", errno: closeError)
        }
        guard rename(temporaryPath, destination) == 0 else {
            let renameError = errno
            unlink(temporaryPath)
            throw .io(path: path, operation: "rename the temporary file onto", errno: renameError)
        }
    }

    deinit {
        if !isClosed {
            #if canImport(Glibc)
                _ = Glibc.close(descriptor)
            #else
                _ = Darwin.close(descriptor)
            #endif
            if let temporaryPath { unlink(temporaryPath) }
        }
    }
}
