import Testing

@testable import STAGeometry

/// A minimal inflater (RFC 1951) for stored and fixed-Huffman blocks, written independently of the encoder.
struct Inflater {
    enum Failure: Error { case truncated, unsupportedBlockType(Int), badSymbol(Int), badDistance(Int), badStoredLength }

    private let data: [UInt8]
    private var bitPosition = 0

    init(_ data: [UInt8]) { self.data = data }

    private mutating func bit() throws -> Int {
        guard bitPosition / 8 < data.count else { throw Failure.truncated }
        let value = Int(data[bitPosition / 8] >> UInt8(bitPosition % 8)) & 1
        bitPosition += 1
        return value
    }

    /// `count` bits, least significant first.
    private mutating func bits(_ count: Int) throws -> Int {
        var value = 0
        for i in 0..<count { value |= try bit() << i }
        return value
    }

    /// A fixed-code literal/length symbol (codes arrive most significant bit first).
    private mutating func fixedSymbol() throws -> Int {
        var code = 0
        for length in 1...9 {
            code = code << 1 | (try bit())
            switch length {
            case 7 where code <= 0b0010111: return code + 256
            case 8 where (0b0011_0000...0b1011_1111).contains(code): return code - 0b0011_0000
            case 8 where (0b1100_0000...0b1100_0111).contains(code): return code - 0b1100_0000 + 280
            case 9 where code >= 0b1_1001_0000: return code - 0b1_1001_0000 + 144
            default: continue
            }
        }
        throw Failure.badSymbol(code)
    }

    mutating func inflate() throws -> [UInt8] {
        let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
        let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
        let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
        let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
        var out = [UInt8]()
        var final = 0
        repeat {
            final = try bits(1)
            let type = try bits(2)
            switch type {
            case 0:
                bitPosition = (bitPosition + 7) / 8 * 8
                let length = try bits(16)
                let complement = try bits(16)
                guard length ^ 0xFFFF == complement else { throw Failure.badStoredLength }
                for _ in 0..<length { out.append(UInt8(try bits(8))) }
            case 1:
                while true {
                    let symbol = try fixedSymbol()
                    if symbol < 256 {
                        out.append(UInt8(symbol))
                    } else if symbol == 256 {
                        break
                    } else {
                        guard symbol <= 285 else { throw Failure.badSymbol(symbol) }
                        let l = symbol - 257
                        let length = lengthBase[l] + (try bits(lengthExtra[l]))
                        var d = 0
                        for _ in 0..<5 { d = d << 1 | (try bit()) }
                        guard d < 30 else { throw Failure.badDistance(d) }
                        let distance = distanceBase[d] + (try bits(distanceExtra[d]))
                        guard distance <= out.count else { throw Failure.badDistance(distance) }
                        for _ in 0..<length { out.append(out[out.count - distance]) }
                    }
                }
            default:
                throw Failure.unsupportedBlockType(type)
            }
        } while final == 0
        return out
    }
}

/// Bitwise CRC-32 and Adler-32, independent of the encoder's table-driven ones.
func referenceCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
    }
    return ~crc
}

func referenceAdler32(_ bytes: [UInt8]) -> UInt32 {
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in bytes {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    return b << 16 | a
}

func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    bytes.reduce(0) { $0 << 8 | UInt32($1) }
}

/// Parses a PNG, checks its structure and checksums, and returns width, height and RGB pixels.
func decodePNG(_ file: [UInt8]) throws -> (width: Int, height: Int, rgb: [UInt8]) {
    #expect(Array(file.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    var offset = 8
    var types = [String]()
    var header = [UInt8]()
    var compressed = [UInt8]()
    while offset < file.count {
        let length = Int(bigEndian(file[offset..<(offset + 4)]))
        let typeAndData = Array(file[(offset + 4)..<(offset + 8 + length)])
        let crc = bigEndian(file[(offset + 8 + length)..<(offset + 12 + length)])
        let type = String(decoding: typeAndData.prefix(4), as: UTF8.self)
        #expect(crc == referenceCRC32(typeAndData), "CRC of \(type)")
        types.append(type)
        if type == "IHDR" { header = Array(typeAndData.dropFirst(4)) }
        if type == "IDAT" { compressed += typeAndData.dropFirst(4) }
        offset += 12 + length
    }
    #expect(offset == file.count)
    #expect(types.first == "IHDR" && types.last == "IEND" && types.contains("IDAT"))
    try #require(header.count == 13)
    let width = Int(bigEndian(header[0..<4]))
    let height = Int(bigEndian(header[4..<8]))
    #expect(Array(header[8..<13]) == [8, 2, 0, 0, 0])
    // zlib: header check, deflate data, Adler-32.
    try #require(compressed.count >= 6)
    #expect((Int(compressed[0]) << 8 | Int(compressed[1])) % 31 == 0 && compressed[0] & 0x0F == 8)
    var inflater = Inflater(Array(compressed.dropFirst(2).dropLast(4)))
    let scanlines = try inflater.inflate()
    #expect(bigEndian(compressed.suffix(4)) == referenceAdler32(scanlines))
    let stride = width * 3
    try #require(scanlines.count == height * (stride + 1))
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        let filter = scanlines[y * (stride + 1)]
        for i in 0..<stride {
            let raw = scanlines[y * (stride + 1) + 1 + i]
            let left = i >= 3 ? rgb[y * stride + i - 3] : 0
            let up = y > 0 ? rgb[(y - 1) * stride + i] : 0
            let upLeft = y > 0 && i >= 3 ? rgb[(y - 1) * stride + i - 3] : 0
            let predictor: UInt8
            switch filter {
            case 0: predictor = 0
            case 1: predictor = left
            case 2: predictor = up
            case 3: predictor = UInt8((Int(left) + Int(up)) / 2)
            case 4:
                let p = Int(left) + Int(up) - Int(upLeft)
                let (pa, pb, pc) = (abs(p - Int(left)), abs(p - Int(up)), abs(p - Int(upLeft)))
                predictor = pa <= pb && pa <= pc ? left : (pb <= pc ? up : upLeft)
            default:
                Issue.record("bad filter \(filter)")
                predictor = 0
            }
            rgb[y * stride + i] = raw &+ predictor
        }
    }
    return (width, height, rgb)
}

@Suite("Block pattern pictures")
struct BlockPatternTests {
    @Test func checksums() {
        let digits = Array("123456789".utf8)
        #expect(CRC32.checksum(digits) == 0xCBF4_3926)
        #expect(Adler32.checksum(Array("Wikipedia".utf8)) == 0x11E6_0398)
        var rng = SplitMix64(seed: 5)
        let noise = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(CRC32.checksum(noise) == referenceCRC32(noise))
        #expect(Adler32.checksum(noise) == referenceAdler32(noise))
        let ones = [UInt8](repeating: 255, count: 100_000)  // exercises the deferred modulo
        #expect(Adler32.checksum(ones) == referenceAdler32(ones))
    }

    /// Deflate round trips: empty, noise, long runs, repeats at many distances, and mixtures.
    @Test func deflateRoundTrip() throws {
        var rng = SplitMix64(seed: 11)
        let noise = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let pattern = (0..<70_000).map { UInt8(truncatingIfNeeded: ($0 % 1000) * 7 + $0 / 5000) }
        var mixture = [UInt8]()
        for _ in 0..<200 {
            if Bool.random(using: &rng), mixture.count > 10 {
                let distance = Int.random(in: 1...min(mixture.count, 40_000), using: &rng)
                for _ in 0..<Int.random(in: 1...600, using: &rng) { mixture.append(mixture[mixture.count - distance]) }
            } else {
                for _ in 0..<Int.random(in: 1...50, using: &rng) { mixture.append(UInt8.random(in: 0...3, using: &rng)) }
            }
        }
        for input in [[], [42], noise, [UInt8](repeating: 7, count: 100_000), pattern, mixture] {
            var inflater = Inflater(Deflate.deflate(input))
            #expect(try inflater.inflate() == input)
        }
        let runs = Deflate.zlib([UInt8](repeating: 0, count: 100_000))
        #expect(runs.count < 1000)
    }

    /// A PNG of a block pattern decodes to the image, and each block shows its class colour.
    @Test func pngOfAnalysis() throws {
        let layout = try STALayout(canvas: [24, 24], tile: [4, 4])
        let analysis = try MaskAnalysis(layout: layout, family: .tiledNatten(windowTokens: [13, 13]), queryBlock: 16, keyBlock: 16)
        #expect(analysis.mixed > 0 && analysis.dense > 0 && analysis.empty > 0)
        let image = BlockPattern.image(analysis, maxPixels: 300)
        let k = 300 / 36  // 8 pixels per block
        #expect(image.width == 36 * k && image.height == 36 * k)
        for row in 0..<analysis.rows {
            for column in 0..<analysis.columns {
                let expected = BlockPattern.colour(of: analysis.blockClass(row: row, column: column)!)
                let pixel = image.pixel(x: column * k + 1, y: row * k + 2)!
                #expect(pixel == expected)
                // Grid line: the last pixel column of a block is 15 % darker.
                let edge = image.pixel(x: column * k + k - 1, y: row * k + 1)!
                #expect(edge.0 == UInt8(Int(expected.0) * 85 / 100))
            }
        }
        let png = BlockPattern.png(image)
        let decoded = try decodePNG(png)
        #expect(decoded.width == image.width && decoded.height == image.height)
        #expect(decoded.rgb == image.rgb)
        #expect(png.count < image.rgb.count / 10)
        #expect(BlockPattern.png(analysis, maxPixels: 300) == png)
    }

    /// Grids larger than the cap are averaged f × f blocks per pixel.
    @Test func downsampledImage() throws {
        let layout = try STALayout(canvas: [30, 17], tile: [3, 4])
        let analysis = try MaskAnalysis(layout: layout, family: .natten(windowTokens: [5, 3]), queryBlock: 2, keyBlock: 3)
        #expect(analysis.rows == 255 && analysis.columns == 170)
        let image = BlockPattern.image(analysis, maxPixels: 100)  // f = 3
        #expect(image.width == 57 && image.height == 85)
        for (x, y) in [(0, 0), (10, 20), (56, 84), (30, 40)] {
            var sum = (0, 0, 0)
            var count = 0
            for row in (3 * y)..<min(3 * y + 3, 255) {
                for column in (3 * x)..<min(3 * x + 3, 170) {
                    let c = BlockPattern.colour(of: analysis.blockClass(row: row, column: column)!)
                    sum = (sum.0 + Int(c.0), sum.1 + Int(c.1), sum.2 + Int(c.2))
                    count += 1
                }
            }
            let pixel = image.pixel(x: x, y: y)!
            #expect(abs(Int(pixel.0) - sum.0 / count) <= 1 && abs(Int(pixel.2) - sum.2 / count) <= 1)
        }
        let decoded = try decodePNG(BlockPattern.png(image))
        #expect(decoded.rgb == image.rgb)
        // Degenerate caps never crash.
        let tiny = BlockPattern.image(analysis, maxPixels: 0)
        #expect(tiny.width == 1 && tiny.height == 1)
    }
}
