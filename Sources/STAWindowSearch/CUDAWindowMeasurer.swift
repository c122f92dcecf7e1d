import CUDADriver
import STACUDAKernels
import STAGeometry
import STATensors
import SlidingTileAttention
import Synchronization

/// Measures window errors on a CUDA GPU with the capture kept on the device: the search's fast path
/// (`sta search --gpu`).
///
/// Per capture:
/// 1. q, k, v are copied once from the file's memory mapping to the device as stored (no host copy, no
///    fp32 host arrays); a capture stored in bf16 (or f16 for all three) is used as is, any other dtype is
///    rounded to bf16 on the device (`WindowErrorKernels.prepare`, which also counts non-finite values in
///    the rows attention reads: such a capture is rejected with `nonFiniteActivation`, as on the CPU).
/// 2. Full attention runs once through `CUDAEngine` (the same forward entry point as every other caller;
///    the Hopper kernel on sm_90, the portable one elsewhere); its output stays on the device.
/// 3. Each candidate window runs as its own plan (uniform window over the heads) into one reused output
///    buffer, followed by `WindowErrorKernels.errorSums` against the full output.
/// 4. The blocks' partial sums added up on the device in a fixed order, then one download of 3 doubles per
///    (candidate, batch·head) — 4 KB for 7 candidates × 24 heads — added over the batch on the host
///    (`ErrorPartials`).
///
/// Attention reads the bf16 (or f16) values and writes bf16 (f16) outputs with fp32 accumulation; errors
/// are summed in fp64 over the compared rows. Against the CPU path (fp32 throughout) the errors agree to the
/// rounding of the outputs, about 2⁻⁸ relative to ‖full‖ (see `SearchAgreement`).
///
/// Cost per capture, with `bytes` = 3 · B·H·S·D · (stored element size): reading the file (`bytes` at the
/// disk's rate, or the page cache's when the file was prefetched or written recently), one host-to-device
/// copy of `bytes` (pageable memory, typically 5–20 GB/s), the attention kernels (full once plus every
/// candidate: kernel time ∝ 1 + Σ candidate densities), and per candidate one pass over two outputs
/// (2 · B·H·S·D · 2 bytes at device bandwidth: about 0.5 ms for a HunyuanVideo layer). For HunyuanVideo
/// at 720p (B·H = 24, S = 115,456, D = 128, bf16: 2.1 GB) with 7 candidates on an H200: full 0.26 s,
/// candidates ≈ 0.33 s, so about 0.6 s of kernels plus the read and copy of 2.1 GB.
/// Once a capture's kernels are queued, the OS is asked to read the next capture's file
/// (`ActivationCapture.adviseWillNeed`) while they run, so over a run of captures the time per capture is
/// about max(file read, kernels) plus the copy from the page cache. (The copy itself still waits for the
/// device to be idle: hiding it too would need pinned, double-buffered asynchronous uploads.)
///
/// Device memory: q, k, v, two outputs (5 · B·H·S·D · 2 bytes), lse (B·H·S · 4), a staging buffer of one
/// tensor as stored when a conversion is needed, and the partial tables; allocated on first use, grown when
/// a larger capture arrives and reused otherwise.
///
/// Thread safety: calls are serialised on an internal lock.
public final class CUDAWindowMeasurer: WindowErrorMeasurer {
    /// The device and the engine attention runs through.
    public let backend: CUDABackend
    private let kernels: WindowErrorKernels
    private let state = Mutex<State>(State())

    /// Seconds of the last measured capture: reading and uploading q, k, v (`transfer`) and everything
    /// after, up to the partial sums on the host (`device`).
    public var lastTimings: (transfer: Double, device: Double) { state.withLock { ($0.transferSeconds, $0.deviceSeconds) } }

    struct State: @unchecked Sendable {
        var buffers: [String: DeviceBuffer] = [:]
        var rowKinds: (rows: SearchRows, buffer: DeviceBuffer)? = nil
        var plans: [PlanKey: AttentionPlan] = [:]
        var transferSeconds = 0.0
        var deviceSeconds = 0.0
    }

    struct PlanKey: Hashable {
        let layout: STALayout
        let window: Window
        let heads: Int
    }

    /// A measurer on `backend`'s device; compiles (or loads from the engine's kernel cache) the search
    /// kernels. Throws `unavailable` when NVRTC or the driver is missing, else `backend`, naming the device and
    /// the reason (older than sm_80, …).
    public init(backend: CUDABackend) throws(WindowSearchError) {
        self.backend = backend
        do throws(STAKernelError) {
            kernels = try WindowErrorKernels(context: backend.context, cache: backend.engine.cache)
        } catch {
            let reason = "the search kernels on \(backend.properties.name): \(error)"
            throw error.isUnavailable ? .unavailable(reason) : .backend(reason)
        }
    }

    /// A measurer on CUDA device `ordinal` of the shared engine. Throws `unavailable` when there is no CUDA
    /// driver or device, saying so.
    public convenience init(device ordinal: Int = 0) throws(WindowSearchError) {
        let backend: CUDABackend
        do throws(AttentionError) { backend = try CUDABackend(ordinal: ordinal) } catch {
            let reason = "the GPU search needs a CUDA device (\(ordinal)): \(error)"
            throw error.kind == .unavailable ? .unavailable(reason) : .backend(reason)
        }
        try self.init(backend: backend)
    }

    /// The dtype attention runs in for tensors stored as `stored` (q, k, v): f16 when all three are f16,
    /// else bf16 (what the CUDA kernels read; f32 and f64 are rounded to it on the device).
    public static func computeDType(stored: [DType]) -> DType {
        stored.allSatisfy { $0 == .float16 } ? .float16 : .bfloat16
    }

    public func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows, next: ActivationCapture?
    ) throws(WindowSearchError) -> [[OutputError]] {
        try locked { (state) throws(WindowSearchError) in
            let problem = Problem(batch: capture.batch, heads: capture.heads, headDim: capture.headDim, layout: layout)
            let stored = try ActivationCapture.tensorNames.map { name throws(WindowSearchError) in
                try capture.storedDType(of: name)
            }
            try checkKernel(problem, dtype: Self.computeDType(stored: stored), layout: layout, source: capture.path, state: &state)
            let clock = ContinuousClock()
            let start = clock.now
            let (tensors, dtype) = try upload(capture, problem: problem, rows: rows, state: &state)
            state.transferSeconds = seconds(clock.now - start)
            // Once this capture's kernels are queued, the OS is asked to read the next one's pages while they
            // run (the request itself takes the calling thread a while for gigabytes).
            return try errors(
                tensors: tensors, dtype: dtype, problem: problem, candidates: candidates, layout: layout, rows: rows,
                source: capture.path, state: &state, whileRunning: { next?.adviseWillNeed() })
        }
    }

    /// The errors of `candidates` on q, k, v that are already on this measurer's device — e.g. a model's
    /// tensors borrowed from PyTorch while it runs, so that nothing is written to or read from a file:
    /// [batch, heads, S, headDim] contiguous in `dtype` (bf16 or f16), S = `layout.sequenceLength`, video
    /// tokens in tile order then text. The caller's buffers are only read: they are copied once into the
    /// measurer's own (zeroing the rows attention never reads and counting non-finite values, which are
    /// rejected as for a file, naming `source`). Returns `[candidate][head]` as `measure(_:candidates:
    /// layout:rows:next:)`. Cost: the kernels only (one device-to-device copy of q, k, v, full attention,
    /// the candidates and their error sums); no host transfer but the partial sums.
    public func measure(
        q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, dtype: DType, batch: Int, heads: Int, headDim: Int,
        candidates: [Window], layout: STALayout, source: String = "(device tensors)"
    ) throws(WindowSearchError) -> [[OutputError]] {
        guard WindowErrorKernels.computeDTypes.contains(dtype) else {
            throw .backend("device tensors are \(dtype); the GPU search reads bf16 or f16")
        }
        let rows = SearchRows(layout: layout)
        return try locked { (state) throws(WindowSearchError) in
            let problem = Problem(batch: batch, heads: heads, headDim: headDim, layout: layout)
            try checkKernel(problem, dtype: dtype, layout: layout, source: source, state: &state)
            let clock = ContinuousClock()
            let start = clock.now
            let tensors = try stage(
                sources: [q, k, v], stored: [dtype, dtype, dtype], dtype: dtype, problem: problem, rows: rows,
                source: source, state: &state, fill: nil)
            state.transferSeconds = seconds(clock.now - start)
            return try errors(
                tensors: tensors, dtype: dtype, problem: problem, candidates: candidates, layout: layout, rows: rows,
                source: source, state: &state)
        }
    }

    /// The sizes of one measured call.
    struct Problem {
        let batch: Int, heads: Int, headDim: Int, sequenceLength: Int
        init(batch: Int, heads: Int, headDim: Int, layout: STALayout) {
            self.batch = batch
            self.heads = heads
            self.headDim = headDim
            self.sequenceLength = layout.sequenceLength
        }
        var batchHeads: Int { batch * heads }
        var elements: Int { batchHeads * sequenceLength * headDim }
    }

    /// `body` under the lock, its typed error carried out.
    private func locked<R>(_ body: (inout State) throws(WindowSearchError) -> R) throws(WindowSearchError) -> R {
        let result: Result<R, WindowSearchError> = state.withLock { state in
            do throws(WindowSearchError) { return .success(try body(&state)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// q, k, v of `capture` on the device in the compute dtype, checked: copied from the file's mapping as
    /// stored (into the tensor buffer itself when no conversion is needed, else into a staging buffer).
    private func upload(
        _ capture: ActivationCapture, problem: Problem, rows: SearchRows, state: inout State
    ) throws(WindowSearchError) -> (tensors: [DeviceBuffer], dtype: DType) {
        let names = ActivationCapture.tensorNames
        let stored = try names.map { name throws(WindowSearchError) in try capture.storedDType(of: name) }
        let dtype = Self.computeDType(stored: stored)
        let tensors = try stage(
            sources: nil, stored: stored, dtype: dtype, problem: problem, rows: rows, source: capture.path,
            state: &state
        ) { index, target in
            try capture.withStoredBytes(of: names[index]) { bytes in try target.copy(from: bytes) }
        }
        return (tensors, dtype)
    }

    /// The measurer's q, k, v buffers in `dtype`, prepared from `sources` (device buffers) or, when nil,
    /// from what `fill` copies into a buffer of the stored dtype; then the non-finite counts are checked.
    private func stage(
        sources: [DeviceBuffer]?, stored: [DType], dtype: DType, problem: Problem, rows: SearchRows, source: String,
        state: inout State, fill: ((Int, DeviceBuffer) throws -> Void)?
    ) throws(WindowSearchError) -> [DeviceBuffer] {
        let names = ActivationCapture.tensorNames
        let elements = problem.elements
        do {
            let tensors = try names.map { try buffer($0, bytes: elements * 2, in: &state) }
            let counters = try buffer("counters", bytes: 48, in: &state)
            try counters.upload((0..<6).map { $0 % 2 == 1 ? UInt64.max : 0 })
            let rowKinds = try self.rowKinds(rows, in: &state)
            let stagingBytes = sources != nil ? 0 : stored.map { $0 == dtype ? 0 : elements * $0.byteCount }.max() ?? 0
            let staging = stagingBytes > 0 ? try buffer("staging", bytes: stagingBytes, in: &state) : nil
            for index in names.indices {
                let from: DeviceBuffer
                if let sources {
                    from = sources[index]
                } else {
                    from = stored[index] == dtype ? tensors[index] : staging!
                    try fill?(index, from)
                }
                let slot = try DeviceBuffer(
                    borrowing: counters.address + UInt64(16 * index), byteCount: 16, context: backend.context)
                try kernels.prepare(
                    source: from, sourceDType: stored[index], destination: tensors[index], dtype: dtype,
                    rowKinds: rowKinds, rows: problem.batchHeads * problem.sequenceLength,
                    sequenceLength: problem.sequenceLength, headDim: problem.headDim, counters: slot)
            }
            let counts = try counters.download(as: UInt64.self, count: 6)
            for (index, name) in names.enumerated() where counts[2 * index] > 0 {
                let first = Int(counts[2 * index + 1])
                let bits = try tensors[index].download(as: UInt16.self, count: 1, byteOffset: 2 * first)[0]
                let value = dtype == .float16 ? Double(Float(Float16(bitPattern: bits))) : BFloat16(bitPattern: bits).doubleValue
                throw WindowSearchError.nonFiniteActivation(
                    path: source, name: name,
                    index: rows.position(ofFlatIndex: first, heads: problem.heads, headDim: problem.headDim),
                    value: value, count: Int(counts[2 * index]))
            }
            return tensors
        } catch let error as WindowSearchError {
            throw error
        } catch {
            throw .backend("reading '\(source)' onto \(backend.properties.name): \(error)")
        }
    }

    /// Full attention once, every candidate against it, the partial sums back and added up; `whileRunning`
    /// is called once everything is queued, before the host waits for the device.
    private func errors(
        tensors: [DeviceBuffer], dtype: DType, problem: Problem, candidates: [Window], layout: STALayout,
        rows: SearchRows, source: String, state: inout State, whileRunning: () -> Void = {}
    ) throws(WindowSearchError) -> [[OutputError]] {
        let clock = ContinuousClock()
        let start = clock.now
        let fullWindow = Window(tiles: layout.tileGrid)
        // The device's blocks of rows, and what comes back: one triple per (candidate, batch·head).
        let blocks = ErrorPartials(
            candidates: candidates.count, batch: problem.batch, heads: problem.heads,
            blocksPerHead: WindowErrorKernels.blocksPerHead(sequenceLength: problem.sequenceLength),
            elementsPerHead: rows.comparedElements(headDim: problem.headDim))
        let partials = ErrorPartials(
            candidates: candidates.count, batch: problem.batch, heads: problem.heads, blocksPerHead: 1,
            elementsPerHead: blocks.elementsPerHead)
        let values: [Double]
        do {
            let full = try buffer("full", bytes: problem.elements * 2, in: &state)
            let sparse = try buffer("sparse", bytes: problem.elements * 2, in: &state)
            let lse = try buffer("lse", bytes: problem.batchHeads * problem.sequenceLength * 4, in: &state)
            let table = try buffer("partials", bytes: blocks.valueCount * 8, in: &state)
            let sums = try buffer("sums", bytes: partials.valueCount * 8, in: &state)
            let rowKinds = try self.rowKinds(rows, in: &state)
            try attention(fullWindow, layout: layout, problem: problem, dtype: dtype, tensors: tensors, output: full,
                lse: lse, state: &state)
            for (index, candidate) in candidates.enumerated() {
                if candidate != fullWindow {
                    try attention(candidate, layout: layout, problem: problem, dtype: dtype, tensors: tensors,
                        output: sparse, lse: lse, state: &state)
                }
                try kernels.errorSums(
                    sparse: candidate == fullWindow ? full : sparse, full: full, dtype: dtype, rowKinds: rowKinds,
                    batchHeads: problem.batchHeads, sequenceLength: problem.sequenceLength, headDim: problem.headDim,
                    partials: table, partialOffset: index * blocks.valuesPerCandidate)
            }
            try kernels.sumBlocks(
                partials: table, groups: candidates.count * problem.batchHeads, blocksPerHead: blocks.blocksPerHead,
                sums: sums)
            whileRunning()
            values = try sums.download(as: Double.self, count: partials.valueCount)
        } catch let error as WindowSearchError {
            throw error
        } catch {
            throw .backend("measuring '\(source)' on \(backend.properties.name): \(error)")
        }
        state.deviceSeconds = seconds(clock.now - start)

        let errors = partials.errors(values)
        // The full output's size is in every candidate's reference sum; it is finite iff the output is.
        if let first = errors.first, !first.allSatisfy({ $0.squaredReference.isFinite }) {
            throw .nonFiniteOutput(path: source, window: "\(fullWindow) (full)")
        }
        for (index, perHead) in errors.enumerated()
        where !perHead.allSatisfy({ $0.squaredError.isFinite && $0.absoluteError.isFinite }) {
            throw .nonFiniteOutput(path: source, window: "\(candidates[index])")
        }
        return errors
    }

    /// Throws `deviceCannotMeasure` with the kernel selection's message when no CUDA kernel of this device
    /// runs attention on `problem` in `dtype` (checked before anything is uploaded).
    private func checkKernel(
        _ problem: Problem, dtype: DType, layout: STALayout, source: String, state: inout State
    ) throws(WindowSearchError) {
        let plan = try self.plan(Window(tiles: layout.tileGrid), layout: layout, heads: problem.heads, state: &state)
        let call = AttentionCall(plan: plan, batch: problem.batch, headDim: problem.headDim, dtype: dtype, direction: .forward)
        do throws(AttentionError) {
            _ = try backend.engine.kernel(for: call, preference: backend.kernel, device: backend.ordinal)
        } catch {
            throw .deviceCannotMeasure(path: source, reason: error.description)
        }
    }

    /// The plan of `window` over `heads`, made once per (layout, window, heads).
    private func plan(_ window: Window, layout: STALayout, heads: Int, state: inout State) throws(WindowSearchError)
        -> AttentionPlan
    {
        let key = PlanKey(layout: layout, window: window, heads: heads)
        if let cached = state.plans[key] { return cached }
        let plan: AttentionPlan
        do throws(GeometryError) { plan = try AttentionPlan(layout: layout, window: window, heads: heads) } catch {
            throw .geometry(error)
        }
        state.plans[key] = plan
        return plan
    }

    /// Queues attention under `window` (uniform over `heads`) through the engine.
    private func attention(
        _ window: Window, layout: STALayout, problem: Problem, dtype: DType,
        tensors: [DeviceBuffer], output: DeviceBuffer, lse: DeviceBuffer, state: inout State
    ) throws(WindowSearchError) {
        let (heads, batch, headDim) = (problem.heads, problem.batch, problem.headDim)
        let plan = try self.plan(window, layout: layout, heads: heads, state: &state)
        do throws(AttentionError) {
            try backend.engine.forward(
                plan: plan, batch: batch, headDim: headDim, dtype: dtype, q: tensors[0], k: tensors[1], v: tensors[2],
                output: output, lse: lse, kernel: backend.kernel)
        } catch {
            throw .backend("attention under window \(window): \(error)")
        }
    }

    /// The device buffer `name` of at least `bytes` bytes: the kept one, or a new one when it is smaller.
    private func buffer(_ name: String, bytes: Int, in state: inout State) throws -> DeviceBuffer {
        if let kept = state.buffers[name], kept.byteCount >= bytes { return kept }
        state.buffers[name] = nil  // free the smaller one first
        let buffer = try DeviceBuffer(context: backend.context, byteCount: max(bytes, 16))
        state.buffers[name] = buffer
        return buffer
    }

    /// The row kinds of `rows` on the device, uploaded once per layout.
    private func rowKinds(_ rows: SearchRows, in state: inout State) throws -> DeviceBuffer {
        if let kept = state.rowKinds, kept.rows == rows { return kept.buffer }
        let buffer = try DeviceBuffer(context: backend.context, copying: rows.kinds)
        state.rowKinds = (rows, buffer)
        return buffer
    }
}

private func seconds(_ duration: Duration) -> Double {
    let (whole, attoseconds) = duration.components
    return Double(whole) + Double(attoseconds) * 1e-18
}
