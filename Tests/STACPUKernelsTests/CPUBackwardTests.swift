import STAGeometry
import STAReference
import STATensors
import Testing

@testable import STACPUKernels

// MARK: Helpers

/// How the CPU backward pass compares with the float64 reference backward.
struct BackwardComparison {
    /// ‖cpu − ref‖ / ‖ref‖ for dq, dk and dv.
    var relativeErrors: [Double]
    /// Whether every element of every gradient was written (none left at the NaN poison).
    var everyElementWritten: Bool
    /// Whether the dq, dk and dv rows of holes and padding text are exactly 0.
    var silentRowsExactlyZero: Bool
}

/// Runs the CPU forward then backward on random inputs of type `T` (gradients poisoned with NaN first),
/// and the float64 reference forward then backward on the same inputs; compares the gradients.
/// `chunk` calls the internal core with that chunk size.
func compareBackward<T: StorageScalar>(
    plan: AttentionPlan, batch: Int, headDim d: Int, as type: T.Type, seed: UInt64,
    threads: Int? = nil, chunk: Int? = nil, scale: Float? = nil
) throws -> BackwardComparison {
    let s = plan.layout.sequenceLength
    let count = batch * plan.heads * s * d
    let q = randomValues(count, as: T.self, seed: seed)
    let k = randomValues(count, as: T.self, seed: seed &+ 1)
    let v = randomValues(count, as: T.self, seed: seed &+ 2)
    let dO = randomValues(count, as: T.self, seed: seed &+ 3)
    let forward = try CPUAttention.forward(
        plan: plan, batch: batch, headDim: d, q: q, k: k, v: v, scale: scale, threads: threads)
    var dqOut = [Float](repeating: .nan, count: count)
    var dkOut = dqOut, dvOut = dqOut
    if let chunk, let kind = StorageKind(T.self) {
        q.withUnsafeBytes { qp in
            k.withUnsafeBytes { kp in
                v.withUnsafeBytes { vp in
                    forward.output.withUnsafeBytes { op in
                        dO.withUnsafeBytes { gp in
                            dqOut.withUnsafeMutableBufferPointer { dq in
                                dkOut.withUnsafeMutableBufferPointer { dk in
                                    dvOut.withUnsafeMutableBufferPointer { dv in
                                        CPUAttention.runBackward(
                                            plan: plan, batch: batch, headDim: d, kind: kind,
                                            q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!,
                                            output: op.baseAddress!, lse: forward.lse,
                                            outputGradient: gp.baseAddress!, dq: dq.baseAddress!,
                                            dk: dk.baseAddress!, dv: dv.baseAddress!, scale: scale,
                                            threads: threads, chunk: chunk)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    } else {
        try q.withUnsafeBufferPointer { qp in
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try forward.output.withUnsafeBufferPointer { op in
                        try forward.lse.withUnsafeBufferPointer { lp in
                            try dO.withUnsafeBufferPointer { gp in
                                try dqOut.withUnsafeMutableBufferPointer { dq in
                                    try dkOut.withUnsafeMutableBufferPointer { dk in
                                        try dvOut.withUnsafeMutableBufferPointer { dv in
                                            try CPUAttention.backward(
                                                plan: plan, batch: batch, headDim: d, q: qp, k: kp, v: vp,
                                                output: op, lse: lp, outputGradient: gp, dq: dq, dk: dk, dv: dv,
                                                scale: scale, threads: threads)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func wide(_ values: [T]) -> [Double] { values.map { Double($0.floatValue) } }
    let (qd, kd, vd) = (wide(q), wide(k), wide(v))
    let referenceForward = try ReferenceAttention.forward(
        q: qd, k: kd, v: vd, batch: batch, headDim: d, plan: plan, scale: scale.map(Double.init))
    let reference = try ReferenceAttention.backward(
        q: qd, k: kd, v: vd, output: referenceForward.output, lse: referenceForward.lse,
        outputGradient: wide(dO), batch: batch, headDim: d, plan: plan, scale: scale.map(Double.init))

    let real = ReferenceAttention.realQueryMask(layout: plan.layout)
    var comparison = BackwardComparison(relativeErrors: [], everyElementWritten: true, silentRowsExactlyZero: true)
    for (cpu, ref) in zip([dqOut, dkOut, dvOut], [reference.dq, reference.dk, reference.dv]) {
        var difference = 0.0, norm = 0.0
        for i in 0..<count {
            if cpu[i].isNaN { comparison.everyElementWritten = false }
            if !real[(i / d) % s], cpu[i] != 0 { comparison.silentRowsExactlyZero = false }
            difference += (Double(cpu[i]) - ref[i]) * (Double(cpu[i]) - ref[i])
            norm += ref[i] * ref[i]
        }
        let error = (difference / norm).squareRoot()
        comparison.relativeErrors.append(error.isNaN ? .infinity : error)
    }
    return comparison
}

func checkBackward(_ result: BackwardComparison, tolerance: Double) {
    #expect(result.everyElementWritten)
    #expect(result.silentRowsExactlyZero)
    for (name, error) in zip(["dq", "dk", "dv"], result.relativeErrors) {
        #expect(error < tolerance, "\(name): relative error \(error)")
    }
}

// MARK: Tests

@Suite struct CPUBackwardAccuracyTests {
    @Test func oneDimensionalWithHolesFloat32() throws {
        // 200 tokens in tiles of 16: 13 tiles, the last with 8 holes.
        let layout = try STALayout(canvas: [200], tile: [16])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [5]), heads: 2)
        checkBackward(try compareBackward(plan: plan, batch: 2, headDim: 64, as: Float.self, seed: 1), tolerance: 1e-5)
    }

    @Test func twoDimensionalHolesAndPerHeadWindowsFloat32() throws {
        let layout = try STALayout(canvas: [18, 22], tile: [4, 8])
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 3]), Window(tiles: [5, 1]), Window(tiles: [1, 3])])
        checkBackward(try compareBackward(plan: plan, batch: 1, headDim: 40, as: Float.self, seed: 2), tolerance: 1e-5)
    }

    @Test func threeDimensionalPaddedTextFloat32() throws {
        // Grid 3×2×3 with holes on the last axis, 13 valid text tokens of 20.
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [1, 3, 1])])
        checkBackward(try compareBackward(plan: plan, batch: 2, headDim: 40, as: Float.self, seed: 3), tolerance: 1e-5)
    }

    @Test func tilesLargerThanOneBlockAndManyTextTokens() throws {
        // Tiles of 256 tokens (two key and query blocks each) and 150 text tokens (two text blocks).
        let layout = try STALayout(canvas: [4, 8, 24], tile: [4, 8, 8], textCount: 150, textValid: 140)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 1, 1]), heads: 1)
        checkBackward(try compareBackward(plan: plan, batch: 1, headDim: 64, as: Float.self, seed: 4), tolerance: 1e-5)
    }

    @Test(arguments: [1, 5, 7, 64, 200])
    func chunkSizesAgree(chunk: Int) throws {
        let layout = try STALayout(canvas: [3, 9, 7], tile: [2, 4, 4], textCount: 9, textValid: 5)
        let plan = try AttentionPlan(layout: layout, headWindows: [Window(tiles: [3, 1, 1]), Window(tiles: [1, 3, 1])])
        checkBackward(
            try compareBackward(plan: plan, batch: 1, headDim: 24, as: Float.self, seed: 5, threads: 2, chunk: chunk),
            tolerance: 1e-5)
    }

    @Test(arguments: [1, 3, 17])
    func oddHeadDimensions(headDim: Int) throws {
        let layout = try STALayout(canvas: [12, 10], tile: [4, 4], textCount: 3)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1, 3]), heads: 1)
        checkBackward(
            try compareBackward(plan: plan, batch: 1, headDim: headDim, as: Float.self, seed: 6), tolerance: 1e-5)
    }

    @Test func customScale() throws {
        let layout = try STALayout(canvas: [300], tile: [20])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [7]), heads: 1)
        checkBackward(
            try compareBackward(plan: plan, batch: 1, headDim: 32, as: Float.self, seed: 9, scale: 0.6),
            tolerance: 1e-5)
    }

    @Test func float16WithTextAndHoles() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [3, 3, 3])])
        checkBackward(try compareBackward(plan: plan, batch: 2, headDim: 64, as: Float16.self, seed: 7), tolerance: 3e-3)
    }

    @Test func bfloat16WithTextAndHoles() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 20, textValid: 13)
        let plan = try AttentionPlan(
            layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [1, 1, 1])])
        checkBackward(try compareBackward(plan: plan, batch: 2, headDim: 40, as: BFloat16.self, seed: 8), tolerance: 1e-2)
    }

    @Test func otherStorageScalarsUseTheFloatPath() throws {
        let layout = try STALayout(canvas: [40], tile: [8], textCount: 4, textValid: 2)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3]), heads: 1)
        checkBackward(try compareBackward(plan: plan, batch: 1, headDim: 16, as: Wide.self, seed: 10), tolerance: 1e-5)
    }
}

@Suite struct CPUBackwardBehaviourTests {
    @Test func inverseScheduleListsExactlyTheAttendingQueryTiles() throws {
        let layout = try STALayout(canvas: [5, 7, 6], tile: [2, 2, 2], textCount: 2, textValid: 1)
        let plan = try AttentionPlan(layout: layout, headWindows: [Window(tiles: [3, 1, 3]), Window(tiles: [1, 3, 1])])
        let forward = AttentionSchedule(plan: plan, batch: 2)
        let schedule = BackwardKeySchedule(plan: plan, batch: 2, forward: forward)
        let tileCount = layout.tileCount
        for window in 0..<plan.windows.count {
            let head = try #require(plan.windowIndexByHead.firstIndex(of: Int32(window)))
            for keyTile in 0..<tileCount {
                let set = window * tileCount + keyTile
                let listed = schedule.queryTiles[Int(schedule.queryTileStart[set])..<Int(schedule.queryTileStart[set + 1])]
                let expected = (0..<tileCount).filter { plan.keyTiles(head: head, queryTile: $0).contains(Int32(keyTile)) }
                #expect(listed.map(Int.init) == expected)
            }
        }
        // Every real key row of every (batch, head) is owned by exactly one item.
        var owners = [Int](repeating: 0, count: 2 * plan.heads * forward.attendingRows.count)
        for item in schedule.items {
            for r in Int(item.rowStart)..<Int(item.rowStart + item.rowCount) {
                owners[Int(item.batchHead) * forward.attendingRows.count + r] += 1
            }
        }
        #expect(owners.allSatisfy { $0 == 1 })
    }

    @Test func threadCountDoesNotChangeTheResult() throws {
        let layout = try STALayout(canvas: [6, 8, 10], tile: [2, 4, 4], textCount: 8, textValid: 6)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3, 1, 1]), heads: 3)
        let count = 2 * 3 * layout.sequenceLength * 32
        let q = randomValues(count, as: Float.self, seed: 14)
        let k = randomValues(count, as: Float.self, seed: 15)
        let v = randomValues(count, as: Float.self, seed: 16)
        let dO = randomValues(count, as: Float.self, seed: 17)
        let forward = try CPUAttention.forward(plan: plan, batch: 2, headDim: 32, q: q, k: k, v: v)
        func gradients(threads: Int) throws -> (dq: [Float], dk: [Float], dv: [Float]) {
            try CPUAttention.backward(
                plan: plan, batch: 2, headDim: 32, q: q, k: k, v: v, output: forward.output, lse: forward.lse,
                outputGradient: dO, threads: threads)
        }
        let one = try gradients(threads: 1), four = try gradients(threads: 4)
        #expect(one.dq == four.dq)
        #expect(one.dk == four.dk)
        #expect(one.dv == four.dv)
    }

    @Test func rowsWithMinusInfinityLSEContributeNothing() throws {
        // A real query row whose lse is −∞ is treated like a hole, as the reference does.
        let layout = try STALayout(canvas: [40], tile: [8], textCount: 4, textValid: 3)
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [3]), heads: 1)
        let (s, d) = (layout.sequenceLength, 16)
        let q = randomValues(s * d, as: Float.self, seed: 21)
        let k = randomValues(s * d, as: Float.self, seed: 22)
        let v = randomValues(s * d, as: Float.self, seed: 23)
        var dO = randomValues(s * d, as: Float.self, seed: 24)
        var (output, lse) = try CPUAttention.forward(plan: plan, batch: 1, headDim: d, q: q, k: k, v: v)
        for row in [3, 17, 41] {
            lse[row] = -.infinity
            for c in 0..<d { (output[row * d + c], dO[row * d + c]) = (.nan, .nan) }
        }
        let cpu = try CPUAttention.backward(
            plan: plan, batch: 1, headDim: d, q: q, k: k, v: v, output: output, lse: lse, outputGradient: dO)
        let reference = try ReferenceAttention.backward(
            q: q, k: k, v: v, output: output, lse: lse, outputGradient: dO, batch: 1, headDim: d, plan: plan)
        for (name, (mine, theirs)) in zip(["dq", "dk", "dv"], [(cpu.dq, reference.dq), (cpu.dk, reference.dk), (cpu.dv, reference.dv)]) {
            var difference = 0.0, norm = 0.0
            for i in mine.indices {
                difference += (Double(mine[i]) - theirs[i]) * (Double(mine[i]) - theirs[i])
                norm += theirs[i] * theirs[i]
            }
            #expect((difference / norm).squareRoot() < 1e-5, "\(name)")
        }
        for row in [3, 17, 41] { #expect(cpu.dq[(row * d)..<((row + 1) * d)].allSatisfy { $0 == 0 }) }
    }

    @Test func rejectsBadArguments() throws {
        let layout = try STALayout(canvas: [16], tile: [8])
        let plan = try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: 2)
        let good = [Float](repeating: 1, count: 2 * 16 * 4)
        let lse = [Float](repeating: 0, count: 32)
        #expect(throws: CPUAttentionError.elementCountMismatch(what: "outputGradient", expected: 128, actual: 127)) {
            _ = try CPUAttention.backward(
                plan: plan, batch: 1, headDim: 4, q: good, k: good, v: good, output: good, lse: lse,
                outputGradient: Array(good.dropLast()))
        }
        #expect(throws: CPUAttentionError.elementCountMismatch(what: "lse", expected: 32, actual: 31)) {
            _ = try CPUAttention.backward(
                plan: plan, batch: 1, headDim: 4, q: good, k: good, v: good, output: good, lse: Array(lse.dropLast()),
                outputGradient: good)
        }
        #expect(throws: CPUAttentionError.invalidBatch(0)) {
            _ = try CPUAttention.backward(
                plan: plan, batch: 0, headDim: 4, q: good, k: good, v: good, output: good, lse: lse,
                outputGradient: good)
        }
        #expect(throws: CPUAttentionError.nonFiniteScale(.infinity)) {
            _ = try CPUAttention.backward(
                plan: plan, batch: 1, headDim: 4, q: good, k: good, v: good, output: good, lse: lse,
                outputGradient: good, scale: .infinity)
        }
        var small = [Float](repeating: 0, count: 127)
        var right = good
        #expect(throws: CPUAttentionError.elementCountMismatch(what: "dk", expected: 128, actual: 127)) {
            try good.withUnsafeBufferPointer { g in
                try lse.withUnsafeBufferPointer { l in
                    try right.withUnsafeMutableBufferPointer { r in
                        try small.withUnsafeMutableBufferPointer { s in
                            try CPUAttention.backward(
                                plan: plan, batch: 1, headDim: 4, q: g, k: g, v: g, output: g, lse: l,
                                outputGradient: g, dq: r, dk: s, dv: r)
                        }
                    }
                }
            }
        }
    }
}
