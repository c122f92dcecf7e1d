#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// The environment variables for kernel development, read in this one place; none is set in normal use.
///
/// `STA_KERNEL_SOURCES`: kernel sources read from a directory instead of the embedded copies, so a
/// changed `.cu` or `.cuh` file can be tried with a built binary, without rebuilding it. A file in that
/// directory whose name is an embedded kernel file's (`sta_forward_sm90.cu`, `sta_sm90_consumer.cuh`, …)
/// replaces that file, and every other file stays the embedded one. Each replaced file is named once on
/// standard error. The directory is trusted like `LD_LIBRARY_PATH`: whoever sets the variable chooses the
/// GPU code this process runs. The kernel cache's key covers the text, so replaced and embedded kernels
/// never share an entry. Unset (the default), nothing is read. Cost: one bounded file read each time a
/// kernel's source is assembled.
public enum KernelDevelopment {
    private static let reported = Mutex<Set<String>>([])

    /// The text of `name` in `$STA_KERNEL_SOURCES`, or nil when the variable is unset or the directory
    /// holds no regular file of that name.
    public static func source(named name: String) -> String? {
        source(named: name, environment: environmentValue)
    }

    /// `$STA_PORTABLE_SHAPE`: a block shape (`ROWSxKEYSxSTEP`) the portable forward kernel uses instead of
    /// the one it chooses (`STAForwardKernel` parses and checks it); nil when unset.
    public static var portableShape: String? { environmentValue("STA_PORTABLE_SHAPE") }

    /// `source(named:)` with the environment given as a function (tests pass their own).
    static func source(named name: String, environment: (String) -> String?) -> String? {
        guard let directory = environment("STA_KERNEL_SOURCES"), !name.contains("/"),
            let bytes = FileIO.read(directory + "/" + name)
        else { return nil }
        if reported.withLock({ $0.insert(name).inserted }) {
            let line = Array("note: kernel source \(name) read from \(directory) (STA_KERNEL_SOURCES)\n".utf8)
            _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
