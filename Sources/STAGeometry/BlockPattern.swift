/// Pictures of a block classification, like the paper's attention-map figures: one square per
/// (query block, key block), dense dark blue, mixed orange, empty white, query blocks top to bottom.
public enum BlockPattern {
    /// An 8-bit RGB image, row-major, 3 bytes per pixel.
    public struct Image: Hashable, Sendable {
        public let width: Int
        public let height: Int
        public let rgb: [UInt8]

        /// The (r, g, b) of pixel (`x`, `y`); nil outside the image.
        public func pixel(x: Int, y: Int) -> (UInt8, UInt8, UInt8)? {
            guard (0..<width).contains(x), (0..<height).contains(y) else { return nil }
            let i = (y * width + x) * 3
            return (rgb[i], rgb[i + 1], rgb[i + 2])
        }
    }

    /// Largest square a block is drawn as, in pixels.
    public static let maximumBlockPixels = 16

    /// The colour a block class is drawn in.
    public static func colour(of blockClass: BlockClass) -> (UInt8, UInt8, UInt8) {
        switch blockClass {
        case .dense: return (31, 45, 94)
        case .mixed: return (230, 138, 40)
        case .empty: return (255, 255, 255)
        }
    }

    /// Draws `analysis` in at most `maxPixels` pixels per side (clamped to 1...`STALimits.maximumImageSide`).
    ///
    /// A grid that fits is drawn with k × k pixels per block, k = min(16, maxPixels / larger side), and
    /// with k ≥ 4 the last pixel row and column of each block are shaded 15 % darker as a grid line. A grid
    /// larger than `maxPixels` is downsampled: each pixel covers f × f blocks, f = ⌈larger side / maxPixels⌉,
    /// and shows the mean of their colours. Cost: O(rows · columns + width · height).
    public static func image(_ analysis: MaskAnalysis, maxPixels: Int = 1024) -> Image {
        let limit = min(max(1, maxPixels), STALimits.maximumImageSide)
        let rows = analysis.rows
        let columns = analysis.columns
        let side = max(rows, columns, 1)
        var rgb = [UInt8]()
        if side <= limit {
            let k = min(maximumBlockPixels, limit / side)
            let width = columns * k
            let height = rows * k
            rgb.reserveCapacity(width * height * 3)
            for y in 0..<height {
                let row = y / k
                let rowEdge = k >= 4 && y % k == k - 1
                for x in 0..<width {
                    let column = x / k
                    let edge = rowEdge || (k >= 4 && x % k == k - 1)
                    let (r, g, b) = colour(of: analysis.classes[row * columns + column])
                    if edge {
                        rgb.append(UInt8(Int(r) * 85 / 100))
                        rgb.append(UInt8(Int(g) * 85 / 100))
                        rgb.append(UInt8(Int(b) * 85 / 100))
                    } else {
                        rgb.append(r)
                        rgb.append(g)
                        rgb.append(b)
                    }
                }
            }
            return Image(width: width, height: height, rgb: rgb)
        }
        let f = (side + limit - 1) / limit
        let width = (columns + f - 1) / f
        let height = (rows + f - 1) / f
        rgb.reserveCapacity(width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                var sum = (0, 0, 0)
                var count = 0
                for row in (y * f)..<min(y * f + f, rows) {
                    for column in (x * f)..<min(x * f + f, columns) {
                        let (r, g, b) = colour(of: analysis.classes[row * columns + column])
                        sum.0 += Int(r)
                        sum.1 += Int(g)
                        sum.2 += Int(b)
                        count += 1
                    }
                }
                rgb.append(UInt8((sum.0 + count / 2) / count))
                rgb.append(UInt8((sum.1 + count / 2) / count))
                rgb.append(UInt8((sum.2 + count / 2) / count))
            }
        }
        return Image(width: width, height: height, rgb: rgb)
    }
}
