/// The softmax scale rule of every backend and front end: nil or 0 means 1/√headDim; any other value must
/// be positive and finite (also once rounded to `Float`, which the kernels take).
public enum AttentionScale {
    /// The scale a call runs with. Throws `invalidArgument` for a negative, infinite or NaN scale, or one
    /// that is 0 or infinite as a `Float`. Cost: none.
    public static func resolve(_ scale: Double?, headDim: Int) throws(AttentionError) -> Float {
        guard let scale, scale != 0 else { return 1 / Float(max(headDim, 1)).squareRoot() }
        let single = Float(scale)
        guard scale.isFinite, scale > 0, single.isFinite, single > 0 else {
            throw .invalidArgument("scale is \(scale); give 0 (or none) for 1/sqrt(head_dim), or a positive finite number")
        }
        return single
    }

    /// `resolve(_:headDim:)` for a `Float` scale.
    public static func resolve(_ scale: Float?, headDim: Int) throws(AttentionError) -> Float {
        try resolve(scale.map(Double.init), headDim: headDim)
    }
}
