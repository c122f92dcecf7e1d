/// A family of attention masks over the video tokens of a layout, for block analysis (spec §5).
///
/// Every family is a product of per-axis rules: query token q attends key token k iff, on every canvas
/// axis, k's coordinate lies in an interval that depends only on q's coordinate. The families differ in
/// that interval and in the token order of the sequence the kernel sees:
///
/// | family | per-axis key interval of a query at coordinate q | order |
/// |---|---|---|
/// | `full` | the whole axis | tile |
/// | `sta(window)` | the tokens of the key tiles of q's tile, window centre clamped inward per tile | tile |
/// | `natten(windowTokens:)` | w tokens, centre clamp(q, r, N − 1 − r), r = w div 2 | raster |
/// | `tiledNatten(windowTokens:)` | the same as `natten` | tile |
/// | `swin(windowTokens:shifted:)` | the window of w tokens that holds q | tile |
///
/// Windows in tokens: w = N (the canvas axis) means the whole axis; otherwise `natten` needs an odd w
/// (as NATTEN does) and `swin` any 1 ≤ w < N. Holes (padded positions) are never attended.
///
/// Swin windows start at token 0 and repeat every w tokens (the last one shorter when w does not divide
/// the axis). Shifted windows start at w div 2 instead, with the leading w div 2 tokens forming a window of
/// their own: this is the partition of Swin's cyclic shift *with* its attention mask (tokens that wrap
/// around never attend the other end), so it is the mask Swin actually computes. An axis whose window is
/// the whole axis is not shifted (as in Swin).
public enum MaskFamily: Hashable, Sendable, CustomStringConvertible {
    /// Every real video token attends every real video token.
    case full
    /// Sliding tile attention with a window in tiles (validated by `STALayout.resolve(_:)`).
    case sta(Window)
    /// Token-wise neighbourhood attention, raster token order.
    case natten(windowTokens: [Int])
    /// Token-wise neighbourhood attention, tile-contiguous token order.
    case tiledNatten(windowTokens: [Int])
    /// Non-overlapping windows of `windowTokens`, optionally shifted by half a window, tile order.
    case swin(windowTokens: [Int], shifted: Bool)

    /// Whether the sequence the kernel sees is in tile-contiguous order (holes included); otherwise it is
    /// in raster order over the canvas (no holes). Only `natten` uses raster order.
    public var usesTileOrder: Bool {
        if case .natten = self { return false }
        return true
    }

    public var description: String {
        func tokens(_ sizes: [Int]) -> String { "(" + sizes.map(String.init).joined(separator: ",") + ") tokens" }
        switch self {
        case .full: return "full"
        case let .sta(window): return "STA \(window) tiles"
        case let .natten(sizes): return "NATTEN \(tokens(sizes))"
        case let .tiledNatten(sizes): return "tiled NATTEN \(tokens(sizes))"
        case let .swin(sizes, shifted): return (shifted ? "shifted Swin " : "Swin ") + tokens(sizes)
        }
    }
}
