#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension AttentionWorker {
    /// Recomputes output row `row` (an index into [batch · heads · S]) and its log-sum-exp in `Double`,
    /// the way the float64 reference does, for a row whose fp32 result was not finite.
    ///
    /// - Finite inputs whose scores pass the fp32 range (|q·k| · scale beyond about 3.4e38), or whose
    ///   unnormalised P·V sum overflows, get the reference's output; the log-sum-exp is rounded to `Float`
    ///   and so saturates to ±∞ where it is beyond the fp32 range.
    /// - A row that meets NaN or an infinity (in its q row, or in the k or v row of a key it attends) gets
    ///   NaN in every output element and in its log-sum-exp — never zeros. A key whose score is exactly −∞
    ///   gets weight 0, as IEEE arithmetic (and PyTorch's softmax) gives it.
    ///
    /// Cost: 4 · keyCount · headDim Double operations and one allocation; it runs only for such rows.
    func writeExactRow(_ row: Int, keys: UnsafePointer<Int32>, keyCount: Int, headBase: Int) {
        let d = job.headDim
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 3 * d)
        let output = UnsafeMutablePointer<Double>.allocate(capacity: d)
        defer {
            scratch.deallocate()
            output.deallocate()
        }
        let query = scratch, key = scratch + d, value = scratch + 2 * d
        job.kind.loadRow(from: job.q, offset: row * d, count: d, into: query, level: job.level)

        func score(_ index: Int) -> Double {
            job.kind.loadRow(from: job.k, offset: (headBase + Int(keys[index])) * d, count: d, into: key, level: job.level)
            var dot = 0.0
            for c in 0..<d { dot += Double(query[c]) * Double(key[c]) }
            return job.scale * dot
        }

        var maximum = -Double.infinity
        var poisoned = false
        for index in 0..<keyCount {
            let s = score(index)
            if s.isNaN { poisoned = true; break }
            if s > maximum { maximum = s }
        }
        // All scores −∞, or one +∞: softmax is undefined (∞ − ∞), as in the reference.
        poisoned = poisoned || !maximum.isFinite
        var sum = 0.0
        if !poisoned {
            output.update(repeating: 0, count: d)
            for index in 0..<keyCount {
                let weight = exp(score(index) - maximum)
                sum += weight
                job.kind.loadRow(
                    from: job.v, offset: (headBase + Int(keys[index])) * d, count: d, into: value, level: job.level)
                for c in 0..<d { output[c] += weight * Double(value[c]) }
            }
            for c in 0..<d {
                let normalised = Float(output[c] / sum)
                rowBuffer[c] = normalised
                if !normalised.isFinite { poisoned = true }
            }
        }
        if poisoned {
            rowBuffer.update(repeating: .nan, count: d)
            job.kind.storeRow(rowBuffer, count: d, to: job.output, offset: row * d, level: job.level)
            job.lse[row] = .nan
            return
        }
        job.kind.storeRow(rowBuffer, count: d, to: job.output, offset: row * d, level: job.level)
        job.lse[row] = Float(maximum + log(sum))
    }
}
