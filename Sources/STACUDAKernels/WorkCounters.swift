import CUDADriver
import Synchronization

/// The work counters of a persistent kernel: two Int32 per stream (tickets taken, CTAs done), zero before
/// each launch. The kernel's last CTA zeroes them again, so the launches of one stream, which run one
/// after another, share one pair; launches on different streams, which may run at the same time, get
/// their own.
///
/// A pair is allocated (8 bytes, zeroed) the first time a stream is seen, which a stream being captured
/// into a CUDA graph must not do: `counter(for:)` then returns nil and the caller launches one CTA per
/// unit instead. Cost: a lock and a table look-up per launch; one allocation per new stream.
final class WorkCounters: Sendable {
    private let pairs = Mutex<[UInt: DeviceBuffer]>([:])

    /// The pair of `stream` (nil: the legacy default stream) on `context`, or nil when the stream is new
    /// and being captured, or when the allocation fails.
    func counter(for stream: CUDAStream?, context: CUDAContext) -> DeviceBuffer? {
        let key = CUDAStream.key(stream)
        if let pair = pairs.withLock({ $0[key] }) { return pair }
        guard (try? context.makeCurrent()) != nil, !CUDAStream.isCapturing(stream, context: context) else { return nil }
        guard let pair = try? DeviceBuffer(context: context, copying: [Int32](repeating: 0, count: 2)) else { return nil }
        return pairs.withLock { table in
            if let existing = table[key] { return existing }  // another thread was first
            table[key] = pair
            return pair
        }
    }
}
