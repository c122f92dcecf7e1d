@testable import CUDADriver

#if canImport(Glibc)
    import Glibc
#endif

/// NVRTC as the default search finds it, or nil (then NVRTC tests are skipped).
let loadedNVRTC: NVRTCCompiler? = try? NVRTCCompiler.load()
let nvrtcAvailable = loadedNVRTC != nil

/// A new empty directory under /tmp.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/cuda-driver-tests.XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(created != nil, "mkdtemp failed")
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Removes `directory` and the files directly inside it.
func removeDirectory(_ directory: String) {
    if let stream = opendir(directory) {
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        closedir(stream)
    }
    rmdir(directory)
}

/// Names in `directory` (without "." and "..").
func directoryEntries(_ directory: String) -> [String] {
    var names: [String] = []
    guard let stream = opendir(directory) else { return names }
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    closedir(stream)
    return names.sorted()
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(descriptor >= 0)
    bytes.withUnsafeBytes { _ = write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}
