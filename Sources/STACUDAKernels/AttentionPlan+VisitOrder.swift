import STAGeometry

extension AttentionPlan {
    /// Per head, the order in which the Hopper kernels take the head's tiles (query tiles forward, key
    /// tiles backward), packed as the kernels' `visited_tile` reads it: outer | middle << 2 | inner << 4,
    /// axes 0 (t), 1 (h), 2 (w) of the grid as a 3D one (a layout of rank < 3 pads the leading axes with
    /// extent 1); row-major is 36.
    ///
    /// A K/V tile (backward: a Q/dO tile) is read by the tiles whose window holds it, which lie up to
    /// Σ_axes (window span − 1) · stride apart in the order (span: the window's tiles along the axis, at
    /// most the axis' tile count; stride: the product of the extents of the axes inside it). The order
    /// taken minimises that sum, so the CTAs in flight read fewer distinct tiles and more of them stay in
    /// L2; ties keep row-major. For hunyuan's 5×6×10 grid a 3×3×3 window gives w, h, t (72 positions
    /// against row-major's 142); a window spanning h and w whole (1×6×10) keeps row-major.
    /// Cost: O(heads · 6).
    var visitOrderByHead: [Int32] {
        let grid = [Int](repeating: 1, count: 3 - layout.rank) + layout.tileGrid
        let orders = windows.map { window -> Int32 in
            let span = zip([Int](repeating: 1, count: 3 - window.rank) + window.tiles, grid).map { min($0, $1) - 1 }
            var best = (cost: Int.max, packed: Int32(36))
            // Permutations (outer, middle, inner) with row-major first, so that it wins ties.
            for (outer, middle, inner) in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)] {
                let cost = span[inner] + span[middle] * grid[inner] + span[outer] * grid[inner] * grid[middle]
                if cost < best.cost { best = (cost, Int32(outer | middle << 2 | inner << 4)) }
            }
            return best.packed
        }
        return windowIndexByHead.map { orders[Int($0)] }
    }
}
