/// The register-blocked product both halves of attention use.
///
/// For 16 query rows (two `Vector`s, lanes = rows) and 6 columns it computes
///
///     out[c][0..<16] = initial[c] + Σ_{k < depth} x[k · xStride + 0..<16] · y[k · yStride + c · yColumnStride]
///
/// with 12 vector accumulators that stay in registers for the whole `depth` loop: per step two vector
/// loads, six broadcasts and twelve fused multiply-adds (FMA-bound on AVX2 cores).
///
/// - S = Q·Kᵀ: x = Qᵀ (head dimension by rows), y = K rows (yStride 1, yColumnStride = key row stride),
///   columns = keys, out = Sᵀ, initial 0.
/// - O += P·V: x = Pᵀ (keys by rows), y = V (yStride = key row stride, yColumnStride 1), columns = head
///   dimension, out = Oᵀ, initial = Oᵀ · alpha (the online-softmax rescale).
///
/// Columns past `columnCount − 1` are clamped to the last column: they recompute and store the same
/// value again, so a tail needs no separate kernel and no padding of y.
@inline(__always)
func multiplyAccumulate16x6(
    depth: Int,
    x: UnsafePointer<Float>, xStride: Int,
    y: UnsafePointer<Float>, yStride: Int, yColumnStride: Int,
    firstColumn: Int, columnCount: Int,
    out: UnsafeMutablePointer<Float>, outColumnStride: Int,
    rescale: (low: Vector, high: Vector)?
) {
    let last = columnCount - 1
    let c0 = firstColumn
    let c1 = min(firstColumn + 1, last)
    let c2 = min(firstColumn + 2, last)
    let c3 = min(firstColumn + 3, last)
    let c4 = min(firstColumn + 4, last)
    let c5 = min(firstColumn + 5, last)
    let y0 = c0 * yColumnStride, y1 = c1 * yColumnStride, y2 = c2 * yColumnStride
    let y3 = c3 * yColumnStride, y4 = c4 * yColumnStride, y5 = c5 * yColumnStride
    let o0 = out + c0 * outColumnStride, o1 = out + c1 * outColumnStride, o2 = out + c2 * outColumnStride
    let o3 = out + c3 * outColumnStride, o4 = out + c4 * outColumnStride, o5 = out + c5 * outColumnStride

    var a0 = Vector(), b0 = Vector(), a1 = Vector(), b1 = Vector(), a2 = Vector(), b2 = Vector()
    var a3 = Vector(), b3 = Vector(), a4 = Vector(), b4 = Vector(), a5 = Vector(), b5 = Vector()
    if let (low, high) = rescale {
        a0 = load(o0) * low; b0 = load(o0 + 8) * high
        a1 = load(o1) * low; b1 = load(o1 + 8) * high
        a2 = load(o2) * low; b2 = load(o2 + 8) * high
        a3 = load(o3) * low; b3 = load(o3 + 8) * high
        a4 = load(o4) * low; b4 = load(o4 + 8) * high
        a5 = load(o5) * low; b5 = load(o5 + 8) * high
    }
    var xp = x
    var yp = y
    for _ in 0..<depth {
        let xl = load(xp)
        let xh = load(xp + 8)
        var s = Vector(repeating: yp[y0])
        a0.addProduct(xl, s); b0.addProduct(xh, s)
        s = Vector(repeating: yp[y1])
        a1.addProduct(xl, s); b1.addProduct(xh, s)
        s = Vector(repeating: yp[y2])
        a2.addProduct(xl, s); b2.addProduct(xh, s)
        s = Vector(repeating: yp[y3])
        a3.addProduct(xl, s); b3.addProduct(xh, s)
        s = Vector(repeating: yp[y4])
        a4.addProduct(xl, s); b4.addProduct(xh, s)
        s = Vector(repeating: yp[y5])
        a5.addProduct(xl, s); b5.addProduct(xh, s)
        xp += xStride
        yp += yStride
    }
    // Store in reverse so that clamped duplicates (equal to the last column) are overwritten by the
    // original: every copy holds the same value anyway.
    store(a5, o5); store(b5, o5 + 8)
    store(a4, o4); store(b4, o4 + 8)
    store(a3, o3); store(b3, o3 + 8)
    store(a2, o2); store(b2, o2 + 8)
    store(a1, o1); store(b1, o1 + 8)
    store(a0, o0); store(b0, o0 + 8)
}

/// One online-softmax step over a chunk of scores held as Sᵀ (keys by rows, lanes = rows).
///
/// For each group of 8 rows: m′ = max(m, max_j s_j); alpha = 2^(m − m′); p_j = 2^(s_j − m′) written over
/// s_j; l′ = alpha · l + Σ_j p_j. Scores are in base-2 units (the queries carry scale · log2 e).
/// Cost: about 25 vector instructions per 8 scores.
@inline(__always)
func onlineSoftmaxStep(
    scores: UnsafeMutablePointer<Float>, rowStride: Int, keyCount: Int, rowGroups: Int,
    runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
    alpha: UnsafeMutablePointer<Float>
) {
    for group in 0..<rowGroups {
        let column = scores + group * 8
        var chunkMax = Vector(repeating: -.infinity)
        var s = column
        for _ in 0..<keyCount {
            chunkMax = maximum(chunkMax, load(s))
            s += rowStride
        }
        let oldMax = load(runningMax + group * 8)
        let newMax = maximum(oldMax, chunkMax)
        let factor = exp2NonPositive(oldMax - newMax)
        var sum0 = Vector(), sum1 = Vector()
        s = column
        var j = 0
        while j + 2 <= keyCount {
            let p0 = exp2NonPositive(load(s) - newMax)
            let p1 = exp2NonPositive(load(s + rowStride) - newMax)
            store(p0, s)
            store(p1, s + rowStride)
            sum0 += p0
            sum1 += p1
            s += 2 * rowStride
            j += 2
        }
        if j < keyCount {
            let p0 = exp2NonPositive(load(s) - newMax)
            store(p0, s)
            sum0 += p0
        }
        store(newMax, runningMax + group * 8)
        store(load(runningSum + group * 8) * factor + (sum0 + sum1), runningSum + group * 8)
        store(factor, alpha + group * 8)
    }
}
