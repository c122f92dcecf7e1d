extension BFloat16 {
    /// Rounds a `Double` to the nearest bfloat16, ties to even, in one rounding step (no double rounding
    /// through `Float`). Disfavoured so that `BFloat16(1)` and `BFloat16(0.5)` keep meaning the `Float`
    /// initializer. NaN stays NaN (quiet, sign kept); values beyond the largest finite bfloat16 by at
    /// least half an ulp become infinity.
    ///
    /// Method: round to `Float` with round-to-odd (truncate toward zero, then set the last bit if anything
    /// was dropped), which keeps enough information for the final round-to-nearest-even to 8 bits.
    @_disfavoredOverload
    public init(_ value: Double) {
        if value.isNaN {
            self.init(Float.nan.withSign(of: value))
            return
        }
        var narrowed = Float(value)
        if Double(narrowed) != value {
            // Float(value) rounded to nearest; step back toward zero if it rounded away.
            if abs(Double(narrowed)) > abs(value) {
                narrowed = value > 0 ? narrowed.nextDown : narrowed.nextUp
            }
            narrowed = Float(bitPattern: narrowed.bitPattern | 1)
        }
        self.init(narrowed)
    }

    /// The value as a `Double` (exact).
    @inlinable
    public var doubleValue: Double { Double(floatValue) }
}

extension Float {
    fileprivate func withSign(of value: Double) -> Float {
        value.sign == .minus ? -self : self
    }
}
