import STAGeometry

/// Which sequence positions of a layout the window search reads and which it compares: the same rows
/// on every backend.
///
/// - compared: the real video tokens (not holes). Errors are measured over these query rows only; a
///   text query attends every key under any window, so its output never differs from full attention.
/// - read: the compared rows and the valid text. Attention reads nothing else (holes and padding text are
///   never attended), so only these rows must hold finite q, k, v.
public struct SearchRows: Hashable, Sendable {
    /// The sequence length S of the layout.
    public let sequenceLength: Int
    /// Sequence indices of the real video tokens, ascending.
    public let compared: [Int]
    /// Sequence indices of every row attention reads, ascending: `compared`, then the valid text.
    public let read: [Int]

    /// The rows of `layout` (text valid: `layout.text.valid`). Cost: O(S).
    public init(layout: STALayout) {
        sequenceLength = layout.sequenceLength
        compared = (0..<layout.paddedVideoTokenCount).filter { layout.canvasPosition(ofSequenceIndex: $0) != nil }
        read = compared + Array(layout.paddedVideoTokenCount..<(layout.paddedVideoTokenCount + layout.text.valid))
    }

    /// One byte per sequence position, as the device kernels read it: 0 never read (a hole, padding
    /// text), 1 read (valid text), 2 read and compared (a real video token).
    public var kinds: [UInt8] {
        var kinds = [UInt8](repeating: 0, count: sequenceLength)
        for row in read { kinds[row] = 1 }
        for row in compared { kinds[row] = 2 }
        return kinds
    }

    /// Compared elements per (batch entry, head) at head dim `headDim`.
    public func comparedElements(headDim: Int) -> Int { compared.count * headDim }

    /// The [b, h, s, d] index of flat element `index` of a [batch, heads, S, headDim] tensor.
    public func position(ofFlatIndex index: Int, heads: Int, headDim: Int) -> [Int] {
        let row = index / headDim
        let batchHead = row / sequenceLength
        return [batchHead / heads, batchHead % heads, row % sequenceLength, index % headDim]
    }
}
