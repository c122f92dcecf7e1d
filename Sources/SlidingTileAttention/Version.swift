/// The version of this package: the same number `sta --version`, `sta_version()` of the C interface and
/// the Python wheel (`sta.__version__`) report.
public enum SlidingTileAttentionVersion {
    /// Semantic version, "major.minor.patch".
    public static let string = "0.3.0"
}
