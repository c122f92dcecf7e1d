import Dispatch
import STATensors

/// A small, fast, seedable generator (SplitMix64) for test and benchmark inputs.
///
/// Inputs are drawn uniformly from [-1, 1) scaled by `amplitude`: never zeros, so unwritten outputs and
/// wrong indexing show.
public struct RandomInputs: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [-1, 1).
    public mutating func nextSigned() -> Float {
        Float(next() >> 40) * (2.0 / Float(1 << 24)) - 1
    }

    /// `count` values in [-amplitude, amplitude) in storage type `T`. Cost: O(count); counts of more than
    /// 4 Mi values are drawn on all cores, chunk by chunk, each chunk from a generator seeded by this one,
    /// so the values depend only on the seed.
    public mutating func values<T: StorageScalar>(_ count: Int, as: T.Type = T.self, amplitude: Float = 1) -> [T] {
        let chunk = 1 << 22
        guard count > chunk else {
            var result = [T]()
            result.reserveCapacity(count)
            for _ in 0..<count { result.append(T(nextSigned() * amplitude)) }
            return result
        }
        let seeds = (0..<((count + chunk - 1) / chunk)).map { _ in next() }
        return [T](unsafeUninitializedCapacity: count) { result, initialized in
            // Each chunk writes its own elements.
            nonisolated(unsafe) let base = result.baseAddress!
            DispatchQueue.concurrentPerform(iterations: seeds.count) { index in
                var generator = RandomInputs(seed: seeds[index])
                let start = index * chunk
                for i in start..<min(start + chunk, count) {
                    (base + i).initialize(to: T(generator.nextSigned() * amplitude))
                }
            }
            initialized = count
        }
    }
}
