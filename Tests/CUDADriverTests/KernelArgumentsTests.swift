import Testing

@testable import CUDADriver

@Suite struct KernelArgumentsTests {
    @Test func scalarsArePackedAtTheirNaturalAlignment() throws {
        var arguments = KernelArguments()
        arguments.append(Int32(-7))  // 0..<4
        arguments.append(UInt64(0x0102_0304_0506_0708))  // 8..<16 (4 bytes of padding)
        arguments.append(Float(1.5))  // 16..<20
        arguments.append(UInt32(9))  // 20..<24
        arguments.append(Double(2.25))  // 24..<32
        #expect(arguments.count == 5)
        #expect(arguments.offsets == [0, 8, 16, 20, 24])
        #expect(arguments.sizes == [4, 8, 4, 4, 8])
        #expect(arguments.bytes.count == 32)
        #expect(arguments.alignment == 8)
        #expect(Array(arguments.bytes[4..<8]) == [0, 0, 0, 0])
        #expect(Array(arguments.bytes[0..<4]) == [0xF9, 0xFF, 0xFF, 0xFF])
        #expect(Array(arguments.bytes[8..<16]) == [8, 7, 6, 5, 4, 3, 2, 1])
        let bits = Float(1.5).bitPattern
        #expect(Array(arguments.bytes[16..<20]) == [0, 1, 2, 3].map { UInt8(truncatingIfNeeded: bits >> (8 * $0)) })
    }

    @Test func rawStructsHonourTheirAlignment() throws {
        var arguments = KernelArguments()
        arguments.append(Int32(1))
        let descriptor = [UInt8](repeating: 0xAB, count: 128)
        try descriptor.withUnsafeBytes { raw in try arguments.append(bytes: raw, alignment: 64) }
        arguments.append(Int32(2))
        #expect(arguments.offsets == [0, 64, 192])
        #expect(arguments.alignment == 64)
        #expect(arguments.bytes.count == 196)
        #expect(arguments.bytes[4..<64].allSatisfy { $0 == 0 })
        #expect(arguments.bytes[64..<192].allSatisfy { $0 == 0xAB })
    }

    @Test func tensorMapsAre128BytesAt64ByteAlignment() {
        var arguments = KernelArguments()
        arguments.append(UInt64(5))
        arguments.append(TensorMap(bytes: (0..<128).map { UInt8($0) }))
        arguments.append(Float(0))
        #expect(arguments.offsets == [0, 64, 192])
        #expect(arguments.sizes == [8, 128, 4])
        #expect(Array(arguments.bytes[64..<192]) == (0..<128).map { UInt8($0) })
    }

    @Test func badAlignmentsAndEmptyBytesAreRejected() {
        var arguments = KernelArguments()
        let bytes: [UInt8] = [1, 2, 3]
        for alignment in [0, 3, 12, -8, 8192] {
            #expect(throws: CUDAError.self) {
                try bytes.withUnsafeBytes { raw in try arguments.append(bytes: raw, alignment: alignment) }
            }
        }
        #expect(throws: CUDAError.self) {
            try [UInt8]().withUnsafeBytes { raw in try arguments.append(bytes: raw, alignment: 4) }
        }
        #expect(arguments.count == 0)
    }

    @Test func parameterPointersAddressEachArgumentInAlignedStorage() {
        var arguments = KernelArguments()
        arguments.append(Int32(11))
        arguments.append(UInt64(22))
        arguments.append(TensorMap(bytes: [UInt8](repeating: 33, count: 128)))
        arguments.append(Float(4.5))
        arguments.withParameterPointers { pointers in
            guard let pointers else {
                Issue.record("no parameter array for four arguments")
                return
            }
            #expect(pointers[0]!.load(as: Int32.self) == 11)
            #expect(pointers[1]!.load(as: UInt64.self) == 22)
            #expect(Int(bitPattern: pointers[2]!) % 64 == 0)
            #expect(pointers[2]!.load(fromByteOffset: 127, as: UInt8.self) == 33)
            #expect(pointers[3]!.load(as: Float.self) == 4.5)
            #expect(pointers[1]! - pointers[0]! == 8)
        }
        KernelArguments().withParameterPointers { #expect($0 == nil) }
    }
}
