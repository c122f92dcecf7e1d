import Dispatch
import STACPUKernelsC
import STAGeometry
import STATensors
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sliding-tile (and dense) attention on the CPU: tiled, online-softmax ("flash") attention with fp32
/// accumulation, SIMD micro-kernels and every core.
///
/// Inputs and output are [batch, heads, sequenceLength, headDim], contiguous, in tile order then text
/// (`plan.layout.sequenceLength` tokens); log-sum-exp is [batch, heads, sequenceLength], natural log.
/// Rows that attend no key (holes and padding text rows) get output 0 and log-sum-exp −∞. NaN and
/// infinities in q, k or v make every row that uses them NaN (output and log-sum-exp), never 0; rows whose
/// scores pass the fp32 range are recomputed in float64 (docs/SEMANTICS.md).
///
/// The inner loops are the C micro-kernels of `STACPUKernelsC`, compiled for AVX2/FMA/F16C and for the
/// baseline and chosen at run time (`instructionSet` says which).
///
/// Cost: `plan.effectiveFLOPs(batch:headDim:)` floating-point operations (holes and skipped tiles cost
/// nothing) plus a few per cent for the softmax and for gathering key/value chunks, spread over `threads`
/// cores; about 55 % of the fp32 FMA peak on an AVX2 core (benchmarks/cpu/REPORT.md). Scratch: about
/// 320 KiB per thread for headDim 128, plus one key index list; nothing is allocated inside the loops.
public enum CPUAttention {
    /// The micro-kernels this process runs: "AVX2+FMA+F16C" or "portable" (a CPU without them, or the
    /// environment variable STA_CPU_KERNELS=portable).
    public static var instructionSet: String {
        sta_cpu_best_level() == Int32(STA_CPU_LEVEL_AVX2) ? "AVX2+FMA+F16C" : "portable"
    }

    /// Online processors, the default thread count.
    public static var defaultThreadCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Keys per chunk of the online softmax (128 measured a little faster than 64, see
    /// benchmarks/cpu/REPORT.md).
    static let defaultKeyChunk = 128

    /// Attention under `plan` for `batch` sequences.
    ///
    /// - Parameters:
    ///   - q, k, v: [batch, plan.heads, plan.layout.sequenceLength, headDim] each.
    ///   - output: same shape, written completely (holes and padding text rows with 0).
    ///   - lse: [batch, plan.heads, plan.layout.sequenceLength], natural log; −∞ for rows that attend nothing.
    ///   - scale: multiplies Q·Kᵀ; nil means 1/√headDim.
    ///   - textValid: valid text length of each batch row (`batch` entries, each in
    ///     0...plan.layout.text.count); nil means `plan.layout.text.valid` for every row. Text rows at or
    ///     past a row's length are padding: they attend nothing (output 0, lse −∞) and no query of that
    ///     batch row attends them.
    ///   - threads: worker threads; nil means every online core.
    /// - Throws: `CPUAttentionError` when a count does not match or a parameter is out of range; nothing
    ///   is written then.
    public static func forward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int,
        q: UnsafeBufferPointer<T>, k: UnsafeBufferPointer<T>, v: UnsafeBufferPointer<T>,
        output: UnsafeMutableBufferPointer<T>, lse: UnsafeMutableBufferPointer<Float>,
        scale: Float? = nil, textValid: [Int]? = nil, threads: Int? = nil
    ) throws(CPUAttentionError) {
        try validate(
            plan: plan, batch: batch, headDim: headDim, counts: (q.count, k.count, v.count, output.count),
            lseCount: lse.count, scale: scale, textValid: textValid, threads: threads)
        guard let kind = StorageKind(T.self) else {
            // Another StorageScalar: compute in Float and convert once at each end.
            let qf = q.map(\.floatValue), kf = k.map(\.floatValue), vf = v.map(\.floatValue)
            var of = [Float](repeating: 0, count: output.count)
            qf.withUnsafeBufferPointer { qp in
                kf.withUnsafeBufferPointer { kp in
                    vf.withUnsafeBufferPointer { vp in
                        of.withUnsafeMutableBufferPointer { op in
                            run(
                                plan: plan, batch: batch, headDim: headDim, kind: .float32,
                                q: UnsafeRawPointer(qp.baseAddress!), k: UnsafeRawPointer(kp.baseAddress!),
                                v: UnsafeRawPointer(vp.baseAddress!),
                                output: UnsafeMutableRawPointer(op.baseAddress!), lse: lse.baseAddress!,
                                scale: scale, textValid: textValid, threads: threads, keyChunk: defaultKeyChunk)
                        }
                    }
                }
            }
            for i in 0..<output.count { output[i] = T(of[i]) }
            return
        }
        run(
            plan: plan, batch: batch, headDim: headDim, kind: kind,
            q: UnsafeRawPointer(q.baseAddress!), k: UnsafeRawPointer(k.baseAddress!),
            v: UnsafeRawPointer(v.baseAddress!), output: UnsafeMutableRawPointer(output.baseAddress!),
            lse: lse.baseAddress!, scale: scale, textValid: textValid, threads: threads, keyChunk: defaultKeyChunk)
    }

    /// Convenience over arrays: returns the output ([batch, heads, S, headDim]) and log-sum-exp
    /// ([batch, heads, S]).
    public static func forward<T: StorageScalar>(
        plan: AttentionPlan, batch: Int, headDim: Int, q: [T], k: [T], v: [T],
        scale: Float? = nil, textValid: [Int]? = nil, threads: Int? = nil
    ) throws(CPUAttentionError) -> (output: [T], lse: [Float]) {
        let rows = batch * plan.heads * plan.layout.sequenceLength
        try validate(
            plan: plan, batch: batch, headDim: headDim, counts: (q.count, k.count, v.count, rows * headDim),
            lseCount: rows, scale: scale, textValid: textValid, threads: threads)
        var output = [T](repeating: T(0), count: rows * headDim)
        var lse = [Float](repeating: 0, count: rows)
        let result: Result<Void, CPUAttentionError> = q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    output.withUnsafeMutableBufferPointer { op in
                        lse.withUnsafeMutableBufferPointer { lp in
                            Result { () throws(CPUAttentionError) in
                                try forward(
                                    plan: plan, batch: batch, headDim: headDim, q: qp, k: kp, v: vp,
                                    output: op, lse: lp, scale: scale, textValid: textValid, threads: threads)
                            }
                        }
                    }
                }
            }
        }
        try result.get()
        return (output, lse)
    }

    /// Dense attention over `sequenceLength` tokens (no plan needed): every query attends every key.
    /// Same buffer shapes as `forward` with S = sequenceLength.
    public static func dense<T: StorageScalar>(
        batch: Int, heads: Int, sequenceLength: Int, headDim: Int,
        q: UnsafeBufferPointer<T>, k: UnsafeBufferPointer<T>, v: UnsafeBufferPointer<T>,
        output: UnsafeMutableBufferPointer<T>, lse: UnsafeMutableBufferPointer<Float>,
        scale: Float? = nil, threads: Int? = nil
    ) throws(CPUAttentionError) {
        let plan = try densePlan(heads: heads, sequenceLength: sequenceLength)
        try forward(
            plan: plan, batch: batch, headDim: headDim, q: q, k: k, v: v, output: output, lse: lse,
            scale: scale, threads: threads)
    }

    /// The plan of dense attention: a 1D canvas of `sequenceLength` tokens that is one tile, window 1.
    public static func densePlan(heads: Int, sequenceLength: Int) throws(CPUAttentionError) -> AttentionPlan {
        do {
            let layout = try STALayout(canvas: [sequenceLength], tile: [sequenceLength])
            return try AttentionPlan(layout: layout, window: Window(tiles: [1]), heads: heads)
        } catch {
            throw .geometry(error)
        }
    }

    // MARK: Internals

    static func validate(
        plan: AttentionPlan, batch: Int, headDim: Int, counts: (q: Int, k: Int, v: Int, output: Int),
        lseCount: Int, scale: Float?, textValid: [Int]?, threads: Int?
    ) throws(CPUAttentionError) {
        guard batch >= 1 else { throw .invalidBatch(batch) }
        if let textValid {
            guard textValid.count == batch else { throw .textValidCountMismatch(count: textValid.count, batch: batch) }
            let textCount = plan.layout.text.count
            if let row = textValid.firstIndex(where: { !(0...textCount).contains($0) }) {
                throw .textValidOutOfRange(row: row, value: textValid[row], textCount: textCount)
            }
        }
        guard headDim >= 1 else { throw .invalidHeadDimension(headDim) }
        if let threads, threads < 1 { throw .invalidThreadCount(threads) }
        if let scale, !scale.isFinite { throw .nonFiniteScale(scale) }
        let rows = batch * plan.heads * plan.layout.sequenceLength
        let elements = rows * headDim
        for (name, count) in [("q", counts.q), ("k", counts.k), ("v", counts.v), ("output", counts.output)]
        where count != elements {
            throw .elementCountMismatch(what: name, expected: elements, actual: count)
        }
        guard lseCount == rows else { throw .elementCountMismatch(what: "lse", expected: rows, actual: lseCount) }
    }

    /// The validated core: schedules the work items and runs them on `threads` workers that pull items
    /// from a shared atomic counter (dynamic balancing; items are ordered most expensive first).
    static func run(
        plan: AttentionPlan, batch: Int, headDim: Int, kind: StorageKind,
        q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer,
        output: UnsafeMutableRawPointer, lse: UnsafeMutablePointer<Float>,
        scale: Float?, textValid: [Int]? = nil, threads: Int?, keyChunk: Int,
        level: Int32 = sta_cpu_best_level()
    ) {
        let layout = plan.layout
        let schedule = AttentionSchedule(plan: plan, batch: batch, textValid: textValid)
        let sequenceLength = layout.sequenceLength

        // Rows that attend nothing.
        for batchHead in 0..<(batch * plan.heads) {
            for row in schedule.silentRows(batch: batchHead / plan.heads) {
                let index = batchHead * sequenceLength + Int(row)
                kind.storeZeros(count: headDim, to: output, offset: index * headDim)
                lse[index] = -.infinity
            }
        }
        guard !schedule.items.isEmpty else { return }

        let softmaxScale = scale ?? 1 / Float(headDim).squareRoot()
        let scoreScale = softmaxScale * 1.442_695_040_888_963_4
        let workers = min(threads ?? defaultThreadCount, schedule.items.count)
        schedule.attendingRows.withUnsafeBufferPointer { attendingRows in
            schedule.tileRealStart.withUnsafeBufferPointer { tileRealStart in
                plan.keyTileStart.withUnsafeBufferPointer { keyTileStart in
                    plan.keyTiles.withUnsafeBufferPointer { keyTiles in
                        schedule.textValid.withUnsafeBufferPointer { textValid in
                            schedule.items.withUnsafeBufferPointer { items in
                                let job = AttentionJob(
                                    kind: kind, level: level, q: q, k: k, v: v, output: output, lse: lse,
                                    sequenceLength: sequenceLength, headDim: headDim, scoreScale: scoreScale,
                                    scale: Double(softmaxScale),
                                    keyChunk: keyChunk, tileCount: layout.tileCount, heads: plan.heads,
                                    textStart: layout.paddedVideoTokenCount, textValid: textValid.baseAddress!,
                                    attendingRows: attendingRows.baseAddress ?? textValid.baseAddress!,
                                    realVideoCount: schedule.realVideoCount,
                                    tileRealStart: tileRealStart.baseAddress!,
                                    keyTileStart: keyTileStart.baseAddress!,
                                    keyTiles: keyTiles.baseAddress ?? tileRealStart.baseAddress!,
                                    items: items.baseAddress!, maximumKeyCount: schedule.maximumKeyCount)
                                runWorkers(job: job, itemCount: items.count, workers: workers)
                            }
                        }
                    }
                }
            }
        }
    }

    private static func runWorkers(job: AttentionJob, itemCount: Int, workers: Int) {
        if workers <= 1 {
            let worker = AttentionWorker(job: job)
            for index in 0..<itemCount { worker.run(job.items[index]) }
            worker.deallocate()
            return
        }
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let worker = AttentionWorker(job: job)
            while true {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < itemCount else { break }
                worker.run(job.items[index])
            }
            worker.deallocate()
        }
    }
}
