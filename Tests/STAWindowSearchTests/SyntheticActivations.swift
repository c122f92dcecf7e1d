import STAGeometry
import STATensors
import STAWindowSearch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small deterministic generator (SplitMix64) with normal samples, for reproducible test inputs.
struct TestRandom {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func normal() -> Float {
        let u = max(uniform(), 1e-300), w = uniform()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * w))
    }
}

/// How one synthetic head attends.
enum HeadKind {
    /// Scores −Σ_a β_a (p_query,a − p_key,a)² over canvas coordinates (tokens): local along the axes
    /// with a large β, indifferent along axes with β = 0.
    case positional([Float])
    /// Random q and k, N(0, 1): diffuse attention over every key.
    case random
}

/// Builds q, k, v ([batch, heads, S, D], S = layout.sequenceLength, tile order) for `kinds`.
/// Text and hole rows are random.
func syntheticActivations(
    layout: STALayout, kinds: [HeadKind], batch: Int = 1, headDim: Int = 16, seed: UInt64
) -> (q: [Float], k: [Float], v: [Float]) {
    var random = TestRandom(state: seed)
    let sequenceLength = layout.sequenceLength
    let count = batch * kinds.count * sequenceLength * headDim
    var q = [Float](repeating: 0, count: count), k = q, v = q
    for index in 0..<count { v[index] = random.normal() }
    let root = Float(headDim).squareRoot()
    for b in 0..<batch {
        for (h, kind) in kinds.enumerated() {
            for s in 0..<sequenceLength {
                let base = ((b * kinds.count + h) * sequenceLength + s) * headDim
                switch (kind, layout.canvasPosition(ofSequenceIndex: s)) {
                case let (.positional(beta), position?):
                    // q·k / √D = Σ 2β p_q p_k − Σ β p_k², i.e. −Σ β (p_q − p_k)² up to a per-query constant.
                    var squares: Float = 0
                    for axis in 0..<beta.count {
                        let p = Float(position[axis])
                        q[base + axis] = root * 2 * beta[axis] * p
                        k[base + axis] = p
                        squares += beta[axis] * p * p
                    }
                    q[base + beta.count] = -root
                    k[base + beta.count] = squares
                default:
                    for d in 0..<headDim {
                        q[base + d] = random.normal()
                        k[base + d] = random.normal()
                    }
                }
            }
        }
    }
    return (q, k, v)
}

func tensor(_ values: [Float], _ shape: [Int]) throws -> HostTensor {
    try HostTensor(shape: shape, values: values)
}

/// A capture of synthetic activations, held in memory.
func syntheticCapture(
    layout: STALayout, kinds: [HeadKind], step: Int, layer: Int, prompt: String, batch: Int = 1,
    headDim: Int = 16, seed: UInt64
) throws -> ActivationCapture {
    let (q, k, v) = syntheticActivations(layout: layout, kinds: kinds, batch: batch, headDim: headDim, seed: seed)
    let shape = [batch, kinds.count, layout.sequenceLength, headDim]
    let bytes = try ActivationCapture.encode(
        q: tensor(q, shape), k: tensor(k, shape), v: tensor(v, shape), step: step, layer: layer, prompt: prompt)
    return try ActivationCapture(file: SafetensorsFile(bytes: bytes, name: "s\(step)l\(layer)p\(prompt)"), layout: layout)
}
