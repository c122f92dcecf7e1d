// Independent re-statements of the spec (§2) used as oracles: nothing here calls the code under test
// except to build its inputs.

/// A deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The token geometry of the spec, computed from scratch.
struct BruteGeometry {
    let canvas: [Int]
    let tile: [Int]
    let textCount: Int
    let textValid: Int

    var rank: Int { canvas.count }
    var grid: [Int] { zip(canvas, tile).map { ($0 + $1 - 1) / $1 } }
    var tileVolume: Int { tile.reduce(1, *) }
    var tileCount: Int { grid.reduce(1, *) }
    var paddedVideo: Int { tileCount * tileVolume }
    var video: Int { canvas.reduce(1, *) }
    var sequenceLength: Int { paddedVideo + textCount }

    /// Row-major coordinates of `index` over `extents`.
    static func coordinates(_ index: Int, _ extents: [Int]) -> [Int] {
        var result = [Int](repeating: 0, count: extents.count)
        var rest = index
        for axis in (0..<extents.count).reversed() {
            result[axis] = rest % extents[axis]
            rest /= extents[axis]
        }
        return result
    }

    static func index(_ coordinates: [Int], _ extents: [Int]) -> Int {
        var index = 0
        for axis in 0..<extents.count { index = index * extents[axis] + coordinates[axis] }
        return index
    }

    /// Canvas position of tile-order video position `i`, or nil for a hole.
    func position(tileOrder i: Int) -> [Int]? {
        let tileCoordinates = Self.coordinates(i / tileVolume, grid)
        let offset = Self.coordinates(i % tileVolume, tile)
        let position = (0..<rank).map { tileCoordinates[$0] * tile[$0] + offset[$0] }
        for axis in 0..<rank where position[axis] >= canvas[axis] { return nil }
        return position
    }

    /// Spec §2 STA rule between two real video tokens, window in tiles (unresolved: k ≥ n is the whole axis).
    func staAllows(query: [Int], key: [Int], window: [Int]) -> Bool {
        for axis in 0..<rank {
            let n = grid[axis]
            let k = window[axis]
            if k >= n { continue }
            let r = k / 2
            let q = query[axis] / tile[axis]
            let c = min(max(q, r), n - 1 - r)
            if abs(c - key[axis] / tile[axis]) > r { return false }
        }
        return true
    }

    enum Token { case video([Int]), hole, text, textPadding }

    /// What sits at sequence index `i` (tile order, then text).
    func token(_ i: Int) -> Token {
        if i < paddedVideo { return position(tileOrder: i).map { .video($0) } ?? .hole }
        return i - paddedVideo < textValid ? .text : .textPadding
    }

    /// The full joint-attention rule of spec §2 for one head.
    func allows(query: Int, key: Int, window: [Int]) -> Bool {
        allows(query: token(query), key: token(key), window: window)
    }

    func allows(query: Token, key: Token, window: [Int]) -> Bool {
        switch (query, key) {
        case let (.video(q), .video(k)): return staAllows(query: q, key: k, window: window)
        case (.video, .text), (.text, .video), (.text, .text): return true
        default: return false
        }
    }
}
