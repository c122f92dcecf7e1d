import STAGeometry

/// Parses the shape and window syntax of the `sta` command line.
///
/// - Sizes: `30x48x80` (rank 1–3, `x`-separated positive integers).
/// - A window: `3x3x3` in tiles, `18x24x24t` in tokens (converted with the layout's tile), or `full`.
/// - Per-head windows: comma-separated windows, each optionally repeated with `*count`:
///   `5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1`. One window means every head.
public enum ShapeSyntax {
    /// Why a size or window string was rejected.
    public struct ParseError: Error, CustomStringConvertible, Equatable, Sendable {
        public let description: String
    }

    /// Parses `AxBxC` into positive integers.
    public static func sizes(_ text: String, what: String) throws(ParseError) -> [Int] {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        var sizes = [Int]()
        for part in parts {
            guard let value = Int(part), value >= 1 else {
                throw ParseError(description: "\(what) '\(text)' is not a list of positive integers separated by 'x' (e.g. 30x48x80)")
            }
            sizes.append(value)
        }
        guard (1...3).contains(sizes.count) else {
            throw ParseError(description: "\(what) '\(text)' has \(sizes.count) axes; give 1, 2 or 3 (e.g. 30x48x80)")
        }
        return sizes
    }

    /// Parses one window for `layout`: tiles (`3x3x3`), tokens (`18x24x24t`) or `full`.
    public static func window(_ text: String, layout: STALayout) throws -> Window {
        let trimmed = text.lowercased()
        if trimmed == "full" { return Window(tiles: layout.tileGrid) }
        if trimmed.hasSuffix("t") {
            return try layout.window(tokens: sizes(String(trimmed.dropLast()), what: "token window"))
        }
        return try layout.resolve(Window(tiles: sizes(trimmed, what: "window")))
    }

    /// Parses a per-head window list and expands it to exactly `heads` windows.
    /// The repeat counts are added with overflow checks and compared with `heads` before any list is
    /// built, so `3x3x3*1000000000000` is an error, not an allocation.
    public static func headWindows(_ text: String, layout: STALayout, heads: Int) throws -> [Window] {
        var entries = [(window: Window, count: Int)]()
        var total = 0
        for entry in text.split(separator: ",") {
            let pieces = entry.split(separator: "*")
            guard pieces.count <= 2, let first = pieces.first else {
                throw ParseError(description: "window entry '\(entry)' must be WINDOW or WINDOW*COUNT")
            }
            var count = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n >= 1 else {
                    throw ParseError(description: "window entry '\(entry)': repeat count must be a positive integer")
                }
                count = n
            }
            let window = try self.window(String(first), layout: layout)
            let (sum, overflow) = total.addingReportingOverflow(count)
            guard !overflow, sum <= max(heads, STALimits.maximumHeads) else {
                throw GeometryError.exceedsLimit(
                    what: "the head count of window list '\(text)'", value: overflow ? "beyond Int" : String(sum),
                    limit: max(heads, STALimits.maximumHeads))
            }
            total = sum
            entries.append((window, count))
        }
        _ = try STALimits.check(heads, "head count", minimum: 1, maximum: STALimits.maximumHeads)
        if total == 1 { return Array(repeating: entries[0].window, count: heads) }
        guard total == heads else { throw GeometryError.headCountMismatch(expected: heads, actual: total) }
        return entries.flatMap { Array(repeating: $0.window, count: $0.count) }
    }
}
