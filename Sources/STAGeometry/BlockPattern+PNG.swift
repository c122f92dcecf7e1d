extension BlockPattern {
    /// `analysis` drawn by `image(_:maxPixels:)`, encoded as a PNG file.
    public static func png(_ analysis: MaskAnalysis, maxPixels: Int = 1024) -> [UInt8] {
        png(image(analysis, maxPixels: maxPixels))
    }

    /// A PNG file (8-bit RGB, not interlaced) holding `image`.
    ///
    /// Scanlines use the Up filter (the None filter for the first), so a row equal to the one above is
    /// all zeros; the zlib stream is one fixed-Huffman deflate block with greedy LZ77 matching, which
    /// shrinks the large flat areas of block pictures to a few bytes per row. Cost: O(width · height).
    public static func png(_ image: Image) -> [UInt8] {
        let stride = image.width * 3
        var scanlines = [UInt8]()
        scanlines.reserveCapacity(image.height * (stride + 1))
        for y in 0..<image.height {
            let row = y * stride
            if y == 0 {
                scanlines.append(0)
                scanlines.append(contentsOf: image.rgb[row..<(row + stride)])
            } else {
                scanlines.append(2)
                for i in row..<(row + stride) { scanlines.append(image.rgb[i] &- image.rgb[i - stride]) }
            }
        }
        var header = [UInt8]()
        PNGFile.appendBigEndian(UInt32(truncatingIfNeeded: image.width), to: &header)
        PNGFile.appendBigEndian(UInt32(truncatingIfNeeded: image.height), to: &header)
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, adaptive filters, no interlace
        var file: [UInt8] = PNGFile.signature
        PNGFile.appendChunk("IHDR", header, to: &file)
        PNGFile.appendChunk("IDAT", Deflate.zlib(scanlines), to: &file)
        PNGFile.appendChunk("IEND", [], to: &file)
        return file
    }
}

/// PNG container pieces.
enum PNGFile {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    /// Length, type, data, CRC-32 of type and data.
    static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        appendBigEndian(UInt32(data.count), to: &file)
        file += typeBytes
        file += data
        appendBigEndian(CRC32.checksum(typeBytes + data), to: &file)
    }
}

/// CRC-32 of ISO 3309 / PNG (reflected polynomial 0xEDB88320).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

/// Adler-32 of RFC 1950.
enum Adler32 {
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 bytes keep both sums below 2^32 before the reduction.
            let end = min(index + 5552, bytes.count)
            for i in index..<end {
                a += UInt32(bytes[i])
                b += a
            }
            a %= 65521
            b %= 65521
            index = end
        }
        return b << 16 | a
    }
}

/// A small deflate (RFC 1951) compressor: one final block with the fixed Huffman code, greedy LZ77
/// matches up to 258 bytes within 32 KiB found through a hash of the next three bytes, with the previous
/// byte and pixel (distances 1 and 3) also tried.
enum Deflate {
    /// A zlib (RFC 1950) stream: header, deflate data, Adler-32.
    static func zlib(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        out += deflate(bytes)
        PNGFile.appendBigEndian(Adler32.checksum(bytes), to: &out)
        return out
    }

    private static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// Raw deflate data of `bytes`.
    static func deflate(_ bytes: [UInt8]) -> [UInt8] {
        var writer = BitWriter()
        writer.write(1, bits: 1)  // final block
        writer.write(1, bits: 2)  // fixed Huffman
        let count = bytes.count
        let hashBits = 15
        var lastPosition = [Int](repeating: -1, count: 1 << hashBits)
        func hash(_ i: Int) -> Int {
            let v = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            return (v &* 0x9E37_79B1) >> (32 - hashBits) & ((1 << hashBits) - 1)
        }
        func matchLength(_ candidate: Int, _ i: Int) -> Int {
            let limit = min(258, count - i)
            var n = 0
            while n < limit && bytes[candidate + n] == bytes[i + n] { n += 1 }
            return n
        }
        var i = 0
        while i < count {
            var bestLength = 0
            var bestDistance = 0
            if i + 3 <= count {
                let h = hash(i)
                for candidate in [lastPosition[h], i - 1, i - 3] where candidate >= 0 && candidate < i && i - candidate <= 32768 {
                    let n = matchLength(candidate, i)
                    if n > bestLength {
                        bestLength = n
                        bestDistance = i - candidate
                    }
                }
                lastPosition[h] = i
            }
            if bestLength >= 3 {
                writer.writeLength(bestLength)
                writer.writeDistance(bestDistance)
                // Index a few positions inside the match so later data can refer back to them.
                let end = i + bestLength
                var j = i + 1
                while j < end && j + 3 <= count && j < i + 8 {
                    lastPosition[hash(j)] = j
                    j += 1
                }
                i = end
            } else {
                writer.writeLiteral(Int(bytes[i]))
                i += 1
            }
        }
        writer.writeLiteral(256)  // end of block
        return writer.finish()
    }

    /// Bits LSB-first into bytes; Huffman codes are sent most significant bit first.
    private struct BitWriter {
        var bytes: [UInt8] = []
        var buffer: UInt64 = 0
        var used = 0

        mutating func write(_ value: Int, bits: Int) {
            buffer |= UInt64(value) << UInt64(used)
            used += bits
            while used >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: buffer))
                buffer >>= 8
                used -= 8
            }
        }

        /// A Huffman code of `length` bits, most significant bit first.
        mutating func writeCode(_ code: Int, length: Int) {
            var reversed = 0
            for bit in 0..<length { reversed |= (code >> bit & 1) << (length - 1 - bit) }
            write(reversed, bits: length)
        }

        /// Literal/length symbol 0...287 in the fixed code.
        mutating func writeLiteral(_ symbol: Int) {
            switch symbol {
            case 0...143: writeCode(0x30 + symbol, length: 8)
            case 144...255: writeCode(0x190 + symbol - 144, length: 9)
            case 256...279: writeCode(symbol - 256, length: 7)
            default: writeCode(0xC0 + symbol - 280, length: 8)
            }
        }

        mutating func writeLength(_ length: Int) {
            var code = Deflate.lengthBase.count - 1
            while Deflate.lengthBase[code] > length { code -= 1 }
            writeLiteral(257 + code)
            write(length - Deflate.lengthBase[code], bits: Deflate.lengthExtra[code])
        }

        mutating func writeDistance(_ distance: Int) {
            var code = Deflate.distanceBase.count - 1
            while Deflate.distanceBase[code] > distance { code -= 1 }
            writeCode(code, length: 5)
            write(distance - Deflate.distanceBase[code], bits: Deflate.distanceExtra[code])
        }

        mutating func finish() -> [UInt8] {
            if used > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
            buffer = 0
            used = 0
            return bytes
        }
    }
}
