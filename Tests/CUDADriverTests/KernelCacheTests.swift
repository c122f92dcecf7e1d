import Dispatch
import Testing

@testable import CUDADriver

#if canImport(Glibc)
    import Glibc
#endif

private func key(options: [String], source: String = "k()") -> String {
    KernelCache.keyText(
        source: source, sourceName: "k.cu", options: options, architecture: "sm_90a", driverVersion: 12080,
        nvrtcVersion: (13, 0))
}

@Suite struct KernelCacheTests {
    @Test func secondLookupReturnsTheSameBytesWithoutProducing() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        var calls = 0
        let image: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 1, 2, 3, 0, 255]
        let produce = { () throws(CUDAError) -> [UInt8] in
            calls += 1
            return image
        }
        let first = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
        #expect(!first.hit && first.image == image && calls == 1)
        let second = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
        #expect(second.hit && second.image == image && calls == 1)
        // A fresh cache value over the same directory (a new process) also hits.
        let third = try KernelCache(directory: directory).lookupOrProduce(
            keyText: key(options: ["-O3"]), produce: produce)
        #expect(third.hit && calls == 1)
        // Only the entry remains; no temporary files are left behind.
        #expect(directoryEntries(directory).count == 1)
        #expect(directoryEntries(directory).allSatisfy { $0.hasSuffix(".kernel") })
    }

    @Test func differentOptionsMiss() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        var calls = 0
        let produce = { () throws(CUDAError) -> [UInt8] in
            calls += 1
            return [UInt8(calls)]
        }
        let a = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
        let b = try cache.lookupOrProduce(keyText: key(options: ["-O2"]), produce: produce)
        #expect(!b.hit && calls == 2 && a.image != b.image)
        // Option boundaries matter: ["-a", "b"] and ["-a b"] are different keys.
        #expect(key(options: ["-a", "b"]) != key(options: ["-a b"]))
        // Both entries are kept.
        let again = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
        #expect(again.hit && again.image == a.image && calls == 2)
    }

    @Test func corruptKeyTextMisses() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: ["-O3"], source: "the original source")
        try #require(cache.store(keyText: keyText, image: [1, 2, 3]))
        let path = try #require(cache.entryPath(keyText: keyText))
        var contents = try #require(FileIO.read(path))
        // Change one byte inside the stored key text ("original" -> "Original").
        let keyStart = contents.count - 3 - keyText.utf8.count
        let offset = try #require(contents[keyStart...].firstIndex(of: UInt8(ascii: "o")))
        contents[offset] = UInt8(ascii: "O")
        writeFile(path, contents)
        #expect(cache.load(keyText: keyText) == nil)
        var calls = 0
        let result = try cache.lookupOrProduce(keyText: keyText) { () throws(CUDAError) -> [UInt8] in
            calls += 1
            return [1, 2, 3]
        }
        #expect(!result.hit && calls == 1)
        #expect(cache.load(keyText: keyText) == [1, 2, 3])  // rewritten
    }

    @Test func anEntryForAnotherKeyUnderTheSameNameMisses() throws {
        // What a hash collision would look like: the file at A's path holds B's key and image.
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyA = key(options: ["-O3"])
        let keyB = key(options: ["-O1"])
        let pathA = try #require(cache.entryPath(keyText: keyA))
        writeFile(pathA, KernelCache.encodeEntry(keyText: keyB, image: [9, 9, 9]))
        #expect(cache.load(keyText: keyA) == nil)
    }

    @Test func damagedImageMisses() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: [])
        try #require(cache.store(keyText: keyText, image: [1, 2, 3, 4]))
        let path = try #require(cache.entryPath(keyText: keyText))
        var contents = try #require(FileIO.read(path))
        contents[contents.count - 1] ^= 0xFF  // flipped image byte: the stored hash no longer matches
        writeFile(path, contents)
        #expect(cache.load(keyText: keyText) == nil)
        writeFile(path, Array(contents.dropLast()))  // truncated
        #expect(cache.load(keyText: keyText) == nil)
        writeFile(path, [])  // empty
        #expect(cache.load(keyText: keyText) == nil)
    }

    @Test func unwritableDirectoryStillReturnsTheImage() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        // A directory below a regular file can never be created, even by root.
        let file = directory + "/plain-file"
        writeFile(file, [0])
        let cache = KernelCache(directory: file + "/cache")
        var calls = 0
        let produce = { () throws(CUDAError) -> [UInt8] in
            calls += 1
            return [42]
        }
        let first = try cache.lookupOrProduce(keyText: key(options: []), produce: produce)
        #expect(first.image == [42] && !first.hit)
        let second = try cache.lookupOrProduce(keyText: key(options: []), produce: produce)
        #expect(second.image == [42] && !second.hit && calls == 2)
    }

    @Test func producerErrorsPropagateAndStoreNothing() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        #expect(throws: CUDAError.self) {
            try cache.lookupOrProduce(keyText: key(options: [])) { () throws(CUDAError) -> [UInt8] in
                throw .compile(sourceName: "k.cu", log: "error")
            }
        }
        #expect(directoryEntries(directory).isEmpty)
    }

    @Test func defaultDirectoryFollowsTheEnvironment() {
        func directory(_ values: [String: String]) -> String? {
            KernelCache.defaultDirectory { values[$0] }
        }
        #expect(directory(["STA_KERNEL_CACHE": "/a", "XDG_CACHE_HOME": "/b", "HOME": "/c"]) == "/a")
        #expect(directory(["XDG_CACHE_HOME": "/b", "HOME": "/c"]) == "/b/sta-kernels")
        #expect(directory(["HOME": "/c"]) == "/c/.cache/sta-kernels")
        #expect(directory([:]) == nil)
        #expect(KernelCache(directory: nil).directory != nil || directory([:]) == nil)
    }

    @Test func fnv1aMatchesKnownValues() {
        #expect(FNV1a64.hash("".utf8) == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a64.hash("a".utf8) == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a64.hex(0xab) == "00000000000000ab")
    }

    @Test(.enabled(if: nvrtcAvailable, "NVRTC was not found"))
    func compilesOnceThroughNVRTC() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let source = "extern \"C\" __global__ void fill(float* y) { y[threadIdx.x] = 1.0f; }"
        func lookup(_ options: [String]) throws -> (image: [UInt8], hit: Bool) {
            try cache.lookupOrCompile(
                source: source, sourceName: "fill.cu", options: options, architecture: "sm_80",
                driverVersion: 13000, compiler: { () throws(CUDAError) in loadedNVRTC! })
        }
        let first = try lookup(["--use_fast_math"])
        #expect(!first.hit && CompiledKernel.isELF(first.image))
        let second = try lookup(["--use_fast_math"])
        #expect(second.hit && second.image == first.image)
        #expect(try !lookup(["-lineinfo"]).hit)
        let viaPublic = try cache.image(
            source: source, sourceName: "fill.cu", options: ["--use_fast_math"], architecture: "sm_80",
            driverVersion: 13000,
            compiler: { () throws(CUDAError) in loadedNVRTC! })
        #expect(viaPublic == first.image)
    }
}

/// The cache trusts only a directory like ssh trusts ~/.ssh, and reads entries without following links,
/// without blocking and within a size bound.
@Suite struct KernelCacheTrustTests {
    private func countingProducer() -> (produce: () throws(CUDAError) -> [UInt8], calls: () -> Int) {
        final class Counter: @unchecked Sendable { var value = 0 }
        let counter = Counter()
        return ({ () throws(CUDAError) -> [UInt8] in
            counter.value += 1
            return [1, 2, 3]
        }, { counter.value })
    }

    @Test func aDirectoryWritableByGroupOrOthersIsNotUsed() throws {
        for mode: mode_t in [0o777, 0o770, 0o702] {
            let directory = makeTemporaryDirectory()
            defer { removeDirectory(directory) }
            chmod(directory, mode)
            let problem = try #require(KernelCache.problem(withDirectory: directory))
            #expect(problem.contains("writable by group or others"))
            let cache = KernelCache(directory: directory)
            let (produce, calls) = countingProducer()
            let first = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
            let second = try cache.lookupOrProduce(keyText: key(options: ["-O3"]), produce: produce)
            // Compiled in memory every time; nothing written into the untrusted directory.
            #expect(first.image == [1, 2, 3] && !first.hit && !second.hit && calls() == 2)
            #expect(directoryEntries(directory).isEmpty)
            // An entry someone else put there is not loaded either.
            let keyText = key(options: ["-O3"])
            writeFile(try #require(cache.entryPath(keyText: keyText)), KernelCache.encodeEntry(keyText: keyText, image: [6, 6, 6]))
            #expect(cache.load(keyText: keyText) == nil)
        }
    }

    @Test func aDirectoryOwnedByAnotherUserIsNotUsed() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let path: String
        if geteuid() == 0 {
            #expect(chown(directory, 4242, 4242) == 0)
            path = directory
        } else {
            path = "/"  // owned by root
        }
        let problem = try #require(KernelCache.problem(withDirectory: path))
        #expect(problem.contains("owned by user"))
        let (produce, calls) = countingProducer()
        let cache = KernelCache(directory: path)
        _ = try cache.lookupOrProduce(keyText: key(options: []), produce: produce)
        #expect(try !cache.lookupOrProduce(keyText: key(options: []), produce: produce).hit && calls() == 2)
        if geteuid() == 0 { #expect(directoryEntries(directory).isEmpty) }
    }

    @Test func aPrivateDirectoryIsUsedAndCreatedPrivate() throws {
        let parent = makeTemporaryDirectory()
        defer {
            removeDirectory(parent + "/cache")
            removeDirectory(parent)
        }
        let directory = parent + "/cache"
        #expect(KernelCache.problem(withDirectory: parent) == nil)
        let cache = KernelCache(directory: directory)
        try #require(cache.store(keyText: key(options: []), image: [5]))
        var status = stat()
        #expect(stat(directory, &status) == 0 && status.st_mode & 0o777 == 0o700)
        let entry = try #require(cache.entryPath(keyText: key(options: [])))
        #expect(stat(entry, &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(cache.load(keyText: key(options: [])) == [5])
    }

    @Test func aFIFOAtAnEntryPathDoesNotBlock() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: ["-fifo"])
        let path = try #require(cache.entryPath(keyText: keyText))
        #expect(mkfifo(path, 0o600) == 0)
        // Run the lookup on another thread and give it five seconds; a blocking open never returns.
        final class Box: @unchecked Sendable { var result: (image: [UInt8], hit: Bool)? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            box.result = try? cache.lookupOrProduce(keyText: keyText) { () throws(CUDAError) -> [UInt8] in [1, 2, 3] }
            done.signal()
        }
        let finished = done.wait(timeout: .now() + 5) == .success
        #expect(finished, "the lookup blocked on a FIFO")
        if finished {
            #expect(box.result?.hit == false && box.result?.image == [1, 2, 3])
        } else {
            // Unblock the stuck open so the process can finish.
            let writer = open(path, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
        }
    }

    @Test func anOversizedEntryIsNotRead() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: ["-big"])
        let path = try #require(cache.entryPath(keyText: keyText))
        // A valid entry followed by a sparse tail: 1 TiB claimed, nothing on disk.
        writeFile(path, KernelCache.encodeEntry(keyText: keyText, image: [1]))
        #expect(cache.load(keyText: keyText) == [1])
        #expect(truncate(path, 1 << 40) == 0)
        #expect(cache.load(keyText: keyText) == nil)
        // Just over the bound is refused too; at the bound it is read (and then rejected as damaged).
        #expect(truncate(path, off_t(KernelCache.maximumEntryBytes + 1)) == 0)
        #expect(FileIO.read(path) == nil)
        #expect(truncate(path, off_t(KernelCache.maximumEntryBytes)) == 0)
        #expect(FileIO.read(path)?.count == KernelCache.maximumEntryBytes)
        #expect(cache.load(keyText: keyText) == nil)
    }

    @Test func aLinkedEntryIsNotFollowed() throws {
        let directory = makeTemporaryDirectory()
        let elsewhere = makeTemporaryDirectory()
        defer {
            removeDirectory(directory)
            removeDirectory(elsewhere)
        }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: ["-link"])
        let target = elsewhere + "/planted.kernel"
        writeFile(target, KernelCache.encodeEntry(keyText: keyText, image: [6, 6]))
        #expect(symlink(target, try #require(cache.entryPath(keyText: keyText))) == 0)
        #expect(cache.load(keyText: keyText) == nil)
    }

    @Test func anEntryWritableByOthersIsNotRead() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cache = KernelCache(directory: directory)
        let keyText = key(options: ["-mode"])
        try #require(cache.store(keyText: keyText, image: [4]))
        let path = try #require(cache.entryPath(keyText: keyText))
        #expect(cache.load(keyText: keyText) == [4])
        chmod(path, 0o666)
        #expect(cache.load(keyText: keyText) == nil)
    }
}

@Suite struct KernelCacheHeaderKeyTests {
    private func key(headers: [(name: String, source: String)]) -> String {
        KernelCache.keyText(
            source: "#include \"h.cuh\"\nk()", sourceName: "k.cu", headers: headers, options: ["-O3"],
            architecture: "sm_90a", driverVersion: 12080, nvrtcVersion: (13, 0))
    }

    @Test func theKeyCoversEveryHeadersNameAndContents() {
        let base = key(headers: [("h.cuh", "constexpr int N = 1;")])
        #expect(key(headers: [("h.cuh", "constexpr int N = 2;")]) != base)
        #expect(key(headers: [("g.cuh", "constexpr int N = 1;")]) != base)
        #expect(key(headers: []) != base)
        #expect(key(headers: [("h.cuh", "constexpr int N = 1;"), ("g.cuh", "")]) != base)
        #expect(key(headers: [("h.cuh", "constexpr int N = 1;")]) == base)
        // Moving text between a header's name and contents changes the key too (lengths are fields).
        #expect(key(headers: [("h.cuh1", "23")]) != key(headers: [("h.cuh", "123")]))
    }
}
