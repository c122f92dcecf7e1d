/// Vector helpers of the CPU kernels. Every function compiles to a handful of AVX2 instructions when
/// the module is built for x86-64-v3 (see Package.swift).

typealias Vector = SIMD8<Float>

@inline(__always)
func load(_ pointer: UnsafePointer<Float>) -> Vector {
    UnsafeRawPointer(pointer).loadUnaligned(as: Vector.self)
}

@inline(__always)
func load(_ pointer: UnsafeMutablePointer<Float>) -> Vector {
    UnsafeRawPointer(pointer).loadUnaligned(as: Vector.self)
}

@inline(__always)
func store(_ value: Vector, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: Vector.self)
}

/// Lane-wise maximum. (Written as a masked select: the generic `pointwiseMax` is not vectorised.)
@inline(__always)
func maximum(_ a: Vector, _ b: Vector) -> Vector {
    a.replacing(with: b, where: a .< b)
}

/// 2^x lane-wise for x ≤ 0, relative error below 2e-7; x below -127 (and -infinity) gives exactly 0.
///
/// Splits x into an integer n (round to nearest) and f in [-0.5, 0.5], evaluates 2^f by its degree-6
/// Taylor polynomial in f·ln 2 (truncation error (ln 2 / 2)^7 / 7! ≈ 1.2e-7) and puts n into the
/// exponent field.
@inline(__always)
func exp2NonPositive(_ x: Vector) -> Vector {
    let roundingShift = Vector(repeating: 12_582_912)  // 1.5 · 2^23: adding it rounds to an integer.
    let clamped = maximum(x, Vector(repeating: -127))
    let shifted = clamped + roundingShift
    let f = clamped - (shifted - roundingShift)
    var p = Vector(repeating: 1.540_353_039_338_160_6e-4)  // ln2^6 / 6!
    p = Vector(repeating: 1.333_355_814_642_844_3e-3).addingProduct(p, f)
    p = Vector(repeating: 9.618_129_107_628_477e-3).addingProduct(p, f)
    p = Vector(repeating: 5.550_410_866_482_158e-2).addingProduct(p, f)
    p = Vector(repeating: 0.240_226_506_959_100_7).addingProduct(p, f)
    p = Vector(repeating: 0.693_147_180_559_945_3).addingProduct(p, f)
    p = Vector(repeating: 1).addingProduct(p, f)
    // The low mantissa bits of `shifted` hold n; n + 127 shifted into the exponent field is 2^n
    // (n = -127 gives the bit pattern of +0).
    let n = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let power = (n &+ 127) &<< 23
    return p * unsafeBitCast(power, to: Vector.self)
}
