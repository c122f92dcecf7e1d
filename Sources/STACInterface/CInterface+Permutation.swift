import Dispatch

#if canImport(Glibc)
import Glibc
#endif

// sta_tile / sta_untile: the raster ↔ tile-order permutation of host tensors, generic over bytes.

/// Raster order to tile order; see sta.h.
@_cdecl("sta_tile")
public func sta_tile(
    _ plan: OpaquePointer?, _ source: UnsafeRawPointer?, _ destination: UnsafeMutableRawPointer?,
    _ outer: Int64, _ innerBytes: Int64, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    permute(plan, source, destination, outer, innerBytes, toTileOrder: true, error, errorLength)
}

/// Tile order to raster order; see sta.h.
@_cdecl("sta_untile")
public func sta_untile(
    _ plan: OpaquePointer?, _ source: UnsafeRawPointer?, _ destination: UnsafeMutableRawPointer?,
    _ outer: Int64, _ innerBytes: Int64, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    permute(plan, source, destination, outer, innerBytes, toTileOrder: false, error, errorLength)
}

/// `sta_tile` (`toTileOrder`) or `sta_untile`.
private func permute(
    _ plan: OpaquePointer?, _ source: UnsafeRawPointer?, _ destination: UnsafeMutableRawPointer?,
    _ outer: Int64, _ innerBytes: Int64, toTileOrder: Bool, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int
) -> Int32 {
    withStatus(error: error, length: errorLength) { () throws(CInterfaceError) in
        let permutation = try Permutation(
            handle: try HandleRegistry.lookup(plan), source: source, destination: destination, outer: outer,
            innerBytes: innerBytes, toTileOrder: toTileOrder)
        permutation.run()
    }
}

/// One validated permutation between a raster-order tensor [outer, rasterLength, innerBytes] and a
/// tile-order tensor [outer, sequenceLength, innerBytes].
///
/// Cost: one `memcpy` (or `memset` for a hole) of `innerBytes` per token and outer index, split over
/// the cores when the tensor exceeds a few megabytes.
struct Permutation: @unchecked Sendable {
    let handle: PlanHandle
    let source: UnsafeRawPointer
    let destination: UnsafeMutableRawPointer
    let outer: Int
    let innerBytes: Int
    /// true: raster → tile order (`sta_tile`); false: the inverse.
    let toTileOrder: Bool

    init(
        handle: PlanHandle, source: UnsafeRawPointer?, destination: UnsafeMutableRawPointer?, outer: Int64,
        innerBytes: Int64, toTileOrder: Bool
    ) throws(CInterfaceError) {
        let source = try required(source, "src")
        let destination = try required(destination, "dst")
        let outer = try checked(outer, "outer", in: 0...Int.max)
        let innerBytes = try checked(innerBytes, "inner_bytes", in: 0...Int.max)
        let layout = handle.layout
        let (sourceTokens, destinationTokens) =
            toTileOrder ? (handle.rasterLength, layout.sequenceLength) : (layout.sequenceLength, handle.rasterLength)
        let sourceBytes = try product([outer, sourceTokens, innerBytes], "src bytes (outer × tokens × inner_bytes)")
        let destinationBytes = try product(
            [outer, destinationTokens, innerBytes], "dst bytes (outer × tokens × inner_bytes)")
        let sourceStart = UInt(bitPattern: source), destinationStart = UInt(bitPattern: destination)
        let (sourceEnd, overflow1) = sourceStart.addingReportingOverflow(UInt(sourceBytes))
        let (destinationEnd, overflow2) = destinationStart.addingReportingOverflow(UInt(destinationBytes))
        guard !overflow1, !overflow2 else { throw .invalidArgument("src or dst ends past the address space") }
        guard sourceBytes == 0 || destinationBytes == 0
            || sourceEnd <= destinationStart || destinationEnd <= sourceStart
        else {
            throw .invalidArgument("src and dst overlap; the permutation needs two separate buffers")
        }
        self.handle = handle
        self.source = source
        self.destination = destination
        self.outer = outer
        self.innerBytes = innerBytes
        self.toTileOrder = toTileOrder
    }

    /// Below this many bytes the permutation runs on the calling thread.
    static let parallelThreshold = 8 << 20

    func run() {
        let layout = handle.layout
        let padded = layout.paddedVideoTokenCount
        guard outer > 0, innerBytes > 0, padded + layout.text.count > 0 else { return }
        let totalBytes = outer * layout.sequenceLength * innerBytes
        // Work items: (outer index, chunk of tile-order video positions); text goes with chunk 0.
        let chunks = totalBytes < Self.parallelThreshold ? 1 : max(1, min(64, padded / 1024))
        let items = outer * chunks
        let workers = totalBytes < Self.parallelThreshold
            ? 1 : min(items, max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        if workers == 1 {
            for item in 0..<items { runItem(item, chunks: chunks) }
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var item = worker
                while item < items {
                    runItem(item, chunks: chunks)
                    item += workers
                }
            }
        }
    }

    private func runItem(_ item: Int, chunks: Int) {
        let layout = handle.layout
        let padded = layout.paddedVideoTokenCount
        let video = layout.videoTokenCount
        let rasterLength = handle.rasterLength
        let sequenceLength = layout.sequenceLength
        let o = item / chunks, chunk = item % chunks
        let rasterBase = o * rasterLength * innerBytes
        let sequenceBase = o * sequenceLength * innerBytes
        let start = padded * chunk / chunks, end = padded * (chunk + 1) / chunks
        handle.rasterIndexBySequenceIndex.withUnsafeBufferPointer { map in
            for sequenceIndex in start..<end {
                let raster = Int(map[sequenceIndex])
                let sequenceOffset = sequenceBase + sequenceIndex * innerBytes
                if toTileOrder {
                    if raster < 0 {
                        memset(destination + sequenceOffset, 0, innerBytes)
                    } else {
                        memcpy(destination + sequenceOffset, source + rasterBase + raster * innerBytes, innerBytes)
                    }
                } else if raster >= 0 {
                    memcpy(destination + rasterBase + raster * innerBytes, source + sequenceOffset, innerBytes)
                }
            }
        }
        guard chunk == 0, layout.text.count > 0 else { return }
        let textBytes = layout.text.count * innerBytes
        let rasterText = rasterBase + video * innerBytes
        let sequenceText = sequenceBase + padded * innerBytes
        if toTileOrder {
            memcpy(destination + sequenceText, source + rasterText, textBytes)
        } else {
            memcpy(destination + rasterText, source + sequenceText, textBytes)
        }
    }
}
