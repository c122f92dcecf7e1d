import STATensors

/// The accuracy measures of spec §4: a backend's output against the float64 reference.
///
/// Both measures fail closed: a NaN in a compared element gives `.nan`, and mismatched sizes give
/// `.infinity`, so `error < tolerance` never passes by accident.
///
/// **Row masks.** `rowMask` selects rows of `rowLength` elements; row `r` is compared iff
/// `rowMask[r % rowMask.count]`. A mask of one sequence's length S (such as
/// `ReferenceAttention.realQueryMask(layout:)`) therefore applies to every (batch, head) of a
/// [B, H, S, D] output (rowLength D) or a [B, H, S] lse (rowLength 1). Without a mask every row counts.
public enum AttentionAccuracy {
    /// ‖output − reference‖₂ / ‖reference‖₂ over the selected rows. 0 when both norms are 0; `.infinity`
    /// when only the reference norm is 0 or the sizes disagree; `.nan` when a compared element is NaN.
    public static func relativeError(
        _ output: [Double], reference: [Double], rowLength: Int = 1, rowMask: [Bool]? = nil
    ) -> Double {
        guard let rows = RowSelection(count: output.count, referenceCount: reference.count,
                                      rowLength: rowLength, rowMask: rowMask)
        else { return .infinity }
        var difference = 0.0
        var norm = 0.0
        for row in 0..<rows.count where rows.includes(row) {
            for index in (row * rowLength)..<((row + 1) * rowLength) {
                let (value, expected) = (output[index], reference[index])
                if value.isNaN || expected.isNaN { return .nan }
                difference += (value - expected) * (value - expected)
                norm += expected * expected
            }
        }
        if norm == 0 { return difference == 0 ? 0 : .infinity }
        return (difference / norm).squareRoot()
    }

    /// `relativeError` of a storage-type output (converted to `Double` exactly).
    public static func relativeError<T: StorageScalar>(
        _ output: [T], reference: [Double], rowLength: Int = 1, rowMask: [Bool]? = nil
    ) -> Double {
        relativeError(output.map { Double($0.floatValue) }, reference: reference, rowLength: rowLength, rowMask: rowMask)
    }

    /// `relativeError` of a host tensor of any dtype.
    public static func relativeError(
        _ output: HostTensor, reference: [Double], rowLength: Int = 1, rowMask: [Bool]? = nil
    ) -> Double {
        guard let values = try? output.doubles() else { return .infinity }
        return relativeError(values, reference: reference, rowLength: rowLength, rowMask: rowMask)
    }

    /// max |lse − reference| over the selected rows whose reference is finite (rows that attend no key
    /// have reference −∞ and are skipped). `.nan` when a compared value is NaN, `.infinity` when sizes
    /// disagree or a compared value is infinite; 0 when no row is compared.
    public static func maxAbsoluteDifference(_ lse: [Double], reference: [Double], rowMask: [Bool]? = nil) -> Double {
        guard let rows = RowSelection(count: lse.count, referenceCount: reference.count, rowLength: 1, rowMask: rowMask)
        else { return .infinity }
        var worst = 0.0
        for row in 0..<rows.count where rows.includes(row) && reference[row].isFinite {
            if lse[row].isNaN { return .nan }
            worst = max(worst, abs(lse[row] - reference[row]))
        }
        return worst
    }

    /// `maxAbsoluteDifference` of a storage-type lse (usually `Float`).
    public static func maxAbsoluteDifference<T: StorageScalar>(
        _ lse: [T], reference: [Double], rowMask: [Bool]? = nil
    ) -> Double {
        maxAbsoluteDifference(lse.map { Double($0.floatValue) }, reference: reference, rowMask: rowMask)
    }
}

/// Which rows of a flat array are compared.
private struct RowSelection {
    let count: Int
    let mask: [Bool]?

    /// Nil when the sizes disagree, `rowLength` does not divide them, or the mask is empty.
    init?(count: Int, referenceCount: Int, rowLength: Int, rowMask: [Bool]?) {
        guard count == referenceCount, rowLength >= 1, count % rowLength == 0 else { return nil }
        if let rowMask, rowMask.isEmpty { return nil }
        self.count = count / rowLength
        self.mask = rowMask
    }

    func includes(_ row: Int) -> Bool {
        guard let mask else { return true }
        return mask[row % mask.count]
    }
}
