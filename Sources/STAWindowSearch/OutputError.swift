/// How far a sparse attention output is from the full one, as sums over compared elements, so that
/// errors of several captures (prompts, batch entries) add up before averaging.
public struct OutputError: Hashable, Sendable {
    /// Σ (sparse − full)².
    public var squaredError: Double
    /// Σ |sparse − full|.
    public var absoluteError: Double
    /// Σ full², the size of the reference for the relative error.
    public var squaredReference: Double
    /// Number of compared elements.
    public var elementCount: Int

    public init(squaredError: Double = 0, absoluteError: Double = 0, squaredReference: Double = 0, elementCount: Int = 0) {
        self.squaredError = squaredError
        self.absoluteError = absoluteError
        self.squaredReference = squaredReference
        self.elementCount = elementCount
    }

    public static let zero = OutputError()

    /// Adds the sums of `other` (another capture of the same head).
    public mutating func add(_ other: OutputError) {
        squaredError += other.squaredError
        absoluteError += other.absoluteError
        squaredReference += other.squaredReference
        elementCount += other.elementCount
    }

    /// Mean squared error per element (FastVideo's selection criterion); 0 when nothing was compared.
    public var meanSquaredError: Double { elementCount == 0 ? 0 : squaredError / Double(elementCount) }

    /// Mean absolute (L1) error per element; 0 when nothing was compared.
    public var meanAbsoluteError: Double { elementCount == 0 ? 0 : absoluteError / Double(elementCount) }

    /// ‖sparse − full‖ / ‖full‖ over the compared elements (spec §4's measure); 0 when both are 0,
    /// +∞ when only the reference is 0.
    public var relativeError: Double {
        if squaredError == 0 { return 0 }
        return squaredReference == 0 ? .infinity : (squaredError / squaredReference).squareRoot()
    }
}
