import Testing
@testable import STATensors

@Suite struct BFloat16Tests {
    private func bits(_ value: Float) -> UInt16 { BFloat16(value).bitPattern }

    @Test func exactValuesRoundTrip() {
        for pattern: UInt16 in [0x0000, 0x8000, 0x3F80, 0xBF80, 0x4049, 0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F] {
            let value = BFloat16(bitPattern: pattern).floatValue
            #expect(BFloat16(value).bitPattern == pattern)
            #expect(BFloat16(Double(value)).bitPattern == pattern)
        }
    }

    @Test func tiesRoundToEven() {
        // The bf16 ulp at 1 is 2^-7; 1 + 2^-8 is halfway between 1 (even) and 1 + 2^-7 (odd).
        #expect(bits(1 + 0x1p-8) == 0x3F80)
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        #expect(bits(1 + 3 * 0x1p-8) == 0x3F82)
        // Just above and below a tie round to the nearer neighbour.
        #expect(bits((1 + 0x1p-8).nextUp) == 0x3F81)
        #expect(bits((1 + 3 * 0x1p-8).nextDown) == 0x3F81)
        #expect(bits(-(1 + 0x1p-8)) == 0xBF80)
        #expect(bits(-(1 + 3 * 0x1p-8)) == 0xBF82)
    }

    @Test func nanAndInfinity() {
        #expect(BFloat16(Float.nan).floatValue.isNaN)
        // A NaN whose payload lives only in the low 16 bits must not become infinity.
        let lowPayloadNaN = Float(bitPattern: 0x7F80_0001)
        #expect(lowPayloadNaN.isNaN)
        #expect(BFloat16(lowPayloadNaN).floatValue.isNaN)
        #expect(BFloat16(-Float.nan).floatValue.sign == .minus)
        #expect(bits(.infinity) == 0x7F80)
        #expect(bits(-.infinity) == 0xFF80)
        #expect(BFloat16(Double.nan).floatValue.isNaN)
        #expect(BFloat16(Double.infinity).bitPattern == 0x7F80)
    }

    @Test func largestFiniteAndOverflow() {
        let maximum = BFloat16(bitPattern: 0x7F7F).floatValue
        #expect(maximum == 0x1.FEp127)
        // Half an ulp above the maximum is a tie whose even neighbour is infinity.
        let halfway = Float(bitPattern: 0x7F7F_8000)
        #expect(bits(halfway) == 0x7F80)
        #expect(bits(halfway.nextDown) == 0x7F7F)
        #expect(bits(.greatestFiniteMagnitude) == 0x7F80)
        #expect(BFloat16(Double(Float.greatestFiniteMagnitude) * 2).bitPattern == 0x7F80)
        #expect(BFloat16(Double(halfway.nextDown)).bitPattern == 0x7F7F)
    }

    @Test func subnormals() {
        #expect(bits(.leastNonzeroMagnitude) == 0x0000)
        #expect(bits(-.leastNonzeroMagnitude) == 0x8000)
        #expect(bits(Float(bitPattern: 0x0001_8000)) == 0x0002)  // tie, odd low neighbour: up
        #expect(bits(Float(bitPattern: 0x0000_8000)) == 0x0000)  // tie, even low neighbour: down
        #expect(bits(Float(bitPattern: 0x0000_8001)) == 0x0001)
        #expect(BFloat16(bitPattern: 0x0001).floatValue == 0x1p-133)
        #expect(BFloat16(Float(0x1p-133) * 1.25).bitPattern == 0x0001)
        #expect(BFloat16(Double(0x1p-140)).bitPattern == 0x0000)
    }

    @Test func doubleConversionRoundsOnce() {
        // 1 + 2^-8 + 2^-40 is just above a bf16 tie; through Float it would become the tie and round down.
        let value = 1 + 0x1p-8 + 0x1p-40
        #expect(BFloat16(Float(value)).bitPattern == 0x3F80)
        #expect(BFloat16(value).bitPattern == 0x3F81)
        #expect(BFloat16(-value).bitPattern == 0xBF81)
        #expect(BFloat16(1 + 0x1p-8).bitPattern == 0x3F80)
    }

    /// Every conversion picks the nearer bf16 neighbour, the even one on a tie.
    @Test func randomValuesRoundToNearest() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let exponent = Int.random(in: -100...100, using: &rng)
            let sign: Double = Bool.random(using: &rng) ? 1 : -1
            var value = sign * Double.random(in: 1..<2, using: &rng) * Double(sign: .plus, exponent: exponent, significand: 1)
            if Bool.random(using: &rng) { value = Double(Float(value)) }  // exact floats, ties included
            if Int.random(in: 0..<4, using: &rng) == 0 {
                // An exact bf16 tie: a 9-bit significand with its last bit set.
                let bf = Double(Int.random(in: 256..<512, using: &rng) | 1)
                value = sign * bf * Double(sign: .plus, exponent: exponent - 8, significand: 1)
            }
            // Truncate toward zero to bf16: the low neighbour; the high one is the next bf16 away from zero.
            var truncated = Float(value)
            if abs(Double(truncated)) > abs(value) { truncated = value > 0 ? truncated.nextDown : truncated.nextUp }
            let low = UInt16(truncated.bitPattern >> 16)
            let high = low + 1
            let toLow = abs(value - BFloat16(bitPattern: low).doubleValue)
            let toHigh = abs(BFloat16(bitPattern: high).doubleValue - value)
            let expected = toLow < toHigh ? low : toHigh < toLow ? high : (low & 1 == 0 ? low : high)
            #expect(BFloat16(value).bitPattern == expected, "value \(value)")
            if Double(Float(value)) == value {
                #expect(BFloat16(Float(value)).bitPattern == expected, "value \(value)")
            }
        }
    }
}
