/// How a kernel meets one (query block, key block) tile of the attention map.
public enum BlockClass: UInt8, Hashable, Sendable, CaseIterable {
    /// No pair attended (or no real token on one side): the kernel skips the block.
    case empty = 0
    /// Some pairs attended, some not: the kernel computes the block and masks it.
    case mixed = 1
    /// Every pair of real tokens attended: the kernel computes the block without a mask.
    case dense = 2
}

/// The block classification of one mask family's video–video attention map (spec §5, paper Table 1).
///
/// The sequence is the family's token order (tile-contiguous with holes, or raster for `.natten`), cut
/// into query blocks of `queryBlock` tokens (rows) and key blocks of `keyBlock` tokens (columns); the last
/// block of each is shorter when the block does not divide the sequence. A block pair is *dense* when every
/// pair of its real tokens is attended, *empty* when none is (or one side holds only holes), *mixed*
/// otherwise. Text tokens are not part of the analysis.
///
/// The S×S mask is never materialised: each block is cut into a few boxes of canvas tokens, and the pairs
/// attended between two boxes are a product of per-axis counts, each O(1) from prefix sums.
/// Cost: O(rows · columns · b_q · b_k) for b boxes per block (1 for blocks inside one tile, at most 5 in
/// raster order, at most 15 in tile order), plus O(S) to cut the blocks; a pair whose bounding boxes do
/// not meet costs O(1). The HunyuanVideo canvas with 128-token blocks (810,000 block pairs) takes well
/// under a second in a release build. Memory: one byte per block pair.
public struct MaskAnalysis: Hashable, Sendable {
    /// At most this many block pairs are classified (one byte each); larger grids are rejected.
    public static let maximumBlockCount = 1 << 28
    /// At most this many query blocks or key blocks (a few hundred bytes of boxes each); longer sides
    /// are rejected.
    public static let maximumBlocksPerSide = 1 << 20

    public let layout: STALayout
    public let family: MaskFamily
    /// Query block size in tokens (rows of the map).
    public let queryBlock: Int
    /// Key block size in tokens (columns of the map).
    public let keyBlock: Int
    /// Positions of the analysed sequence: `paddedVideoTokenCount` in tile order, `videoTokenCount` in
    /// raster order.
    public let sequenceLength: Int
    /// ⌈sequenceLength / queryBlock⌉.
    public let rows: Int
    /// ⌈sequenceLength / keyBlock⌉.
    public let columns: Int
    public let dense: Int
    public let mixed: Int
    public let empty: Int
    /// Attended (query, key) pairs of real video tokens, over the whole map.
    public let attendedPairs: Int
    /// The class of every block pair, row-major: `classes[row · columns + column]`.
    public let classes: [BlockClass]

    /// Classifies every block pair of `family` on `layout`.
    ///
    /// Throws when a block size is below 1, the family's window does not fit the layout (see
    /// `MaskFamily`), or the grid has more than `maximumBlockCount` block pairs or more than
    /// `maximumBlocksPerSide` blocks on a side (checked before anything is allocated).
    public init(layout: STALayout, family: MaskFamily, queryBlock: Int, keyBlock: Int) throws(GeometryError) {
        guard queryBlock >= 1 else { throw .nonPositiveBlockSize(what: "query block", tokens: queryBlock) }
        guard keyBlock >= 1 else { throw .nonPositiveBlockSize(what: "key block", tokens: keyBlock) }
        let axes = try family.axisKeyIntervals(layout: layout)
        let tileOrder = family.usesTileOrder
        let length = tileOrder ? layout.paddedVideoTokenCount : layout.videoTokenCount
        // ⌈length / block⌉ without forming length + block − 1, which overflows for a block near Int.max.
        let rows = length / queryBlock + (length % queryBlock == 0 ? 0 : 1)
        let columns = length / keyBlock + (length % keyBlock == 0 ? 0 : 1)
        let (blockCount, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, blockCount <= Self.maximumBlockCount, rows <= Self.maximumBlocksPerSide,
            columns <= Self.maximumBlocksPerSide
        else {
            throw .blockGridTooLarge(rows: rows, columns: columns, limit: Self.maximumBlockCount)
        }

        let cutter = BlockBoxes(layout: layout)
        func cut(blockSize: Int, count: Int) -> BlockSet {
            var set = BlockSet()
            set.start.reserveCapacity(count + 1)
            for block in 0..<count {
                let start = block * blockSize
                let end = min(start + blockSize, length)
                if tileOrder {
                    cutter.tileOrderBoxes(start, end, into: &set.boxes)
                } else {
                    cutter.rasterBoxes(start, end, into: &set.boxes)
                }
                set.close(axes: axes)
            }
            return set
        }
        let queries = cut(blockSize: queryBlock, count: rows)
        let keys = queryBlock == keyBlock ? queries : cut(blockSize: keyBlock, count: columns)

        var classes = [BlockClass](repeating: .empty, count: blockCount)
        var dense = 0
        var mixed = 0
        var attendedPairs = 0
        let (a0, a1, a2) = (axes[0], axes[1], axes[2])
        for row in 0..<rows {
            let realQueries = queries.realTokens[row]
            guard realQueries > 0 else { continue }
            let queryBoxes = queries.start[row]..<queries.start[row + 1]
            let reach = queries.reach[row]
            for column in 0..<columns {
                let realKeys = keys.realTokens[column]
                guard realKeys > 0 else { continue }
                let bounds = keys.bounds[column]
                // Keys outside the union of the queries' intervals: nothing to count.
                guard reach.lower0 < bounds.upper0, bounds.lower0 < reach.upper0,
                    reach.lower1 < bounds.upper1, bounds.lower1 < reach.upper1,
                    reach.lower2 < bounds.upper2, bounds.lower2 < reach.upper2
                else { continue }
                var pairs = 0
                for qi in queryBoxes {
                    let q = queries.boxes[qi]
                    for ki in keys.start[column]..<keys.start[column + 1] {
                        let k = keys.boxes[ki]
                        let p0 = a0.pairs(q.lower0, q.upper0, k.lower0, k.upper0)
                        if p0 == 0 { continue }
                        let p1 = a1.pairs(q.lower1, q.upper1, k.lower1, k.upper1)
                        if p1 == 0 { continue }
                        pairs += p0 * p1 * a2.pairs(q.lower2, q.upper2, k.lower2, k.upper2)
                    }
                }
                guard pairs > 0 else { continue }
                attendedPairs += pairs
                if pairs == realQueries * realKeys {
                    classes[row * columns + column] = .dense
                    dense += 1
                } else {
                    classes[row * columns + column] = .mixed
                    mixed += 1
                }
            }
        }

        self.layout = layout
        self.family = family
        self.queryBlock = queryBlock
        self.keyBlock = keyBlock
        self.sequenceLength = length
        self.rows = rows
        self.columns = columns
        self.dense = dense
        self.mixed = mixed
        self.empty = blockCount - dense - mixed
        self.attendedPairs = attendedPairs
        self.classes = classes
    }

    /// rows · columns.
    public var blockCount: Int { rows * columns }
    public var denseFraction: Double { Double(dense) / Double(blockCount) }
    public var mixedFraction: Double { Double(mixed) / Double(blockCount) }
    public var emptyFraction: Double { Double(empty) / Double(blockCount) }

    /// The class of block pair (`row`, `column`); nil outside the grid.
    public func blockClass(row: Int, column: Int) -> BlockClass? {
        guard (0..<rows).contains(row), (0..<columns).contains(column) else { return nil }
        return classes[row * columns + column]
    }

    /// The classes as raw bytes (0 empty, 1 mixed, 2 dense), row-major rows × columns, for rendering.
    public var classGrid: [UInt8] { classes.map(\.rawValue) }
}

/// The boxes of consecutive blocks (CSR), with per block its real token count, the bounding box of its
/// tokens and the bounding box of every key its tokens may attend.
private struct BlockSet {
    var boxes: [TokenBox] = []
    var start: [Int] = [0]
    var realTokens: [Int] = []
    var bounds: [TokenBox] = []
    var reach: [TokenBox] = []

    /// Ends the current block: the boxes appended since the last call.
    mutating func close(axes: [AxisKeyIntervals]) {
        let first = start[start.count - 1]
        start.append(boxes.count)
        var real = 0
        var box = TokenBox(lower0: .max, lower1: .max, lower2: .max, upper0: .min, upper1: .min, upper2: .min)
        for b in boxes[first...] {
            real += b.volume
            box.lower0 = min(box.lower0, b.lower0)
            box.lower1 = min(box.lower1, b.lower1)
            box.lower2 = min(box.lower2, b.lower2)
            box.upper0 = max(box.upper0, b.upper0)
            box.upper1 = max(box.upper1, b.upper1)
            box.upper2 = max(box.upper2, b.upper2)
        }
        realTokens.append(real)
        bounds.append(box)
        if real > 0 {
            // Intervals are monotone: the union over a run of coordinates spans from the first to the last.
            reach.append(
                TokenBox(
                    lower0: axes[0].lower[box.lower0], lower1: axes[1].lower[box.lower1],
                    lower2: axes[2].lower[box.lower2], upper0: axes[0].upper[box.upper0 - 1],
                    upper1: axes[1].upper[box.upper1 - 1], upper2: axes[2].upper[box.upper2 - 1]))
        } else {
            reach.append(box)
        }
    }
}
