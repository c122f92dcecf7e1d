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

    /// `count` values in [-amplitude, amplitude) in storage type `T`. Cost: O(count).
    public mutating func values<T: StorageScalar>(_ count: Int, as: T.Type = T.self, amplitude: Float = 1) -> [T] {
        var result = [T]()
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(T(nextSigned() * amplitude)) }
        return result
    }
}
