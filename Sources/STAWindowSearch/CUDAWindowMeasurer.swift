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
/// 4. One download of the partial sums (3 doubles per (candidate, batch·head, block of rows): kilobytes),
///    added up on the host in a fixed order (`ErrorPartials`).
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
/// `prefetch(_:)` asks the OS to read the next capture while the kernels of this one run.
///
/// Device memory: q, k, v, two outputs (5 · B·H·S·D · 2 bytes), lse (B·H·S · 4), a staging buffer of one
/// tensor as stored when a conversion is needed, and the partial table; allocated on first use, grown when
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
    /// kernels. Throws `backend` naming the device and the reason (older than sm_80, NVRTC missing, …).
    public init(backend: CUDABackend) throws(WindowSearchError) {
        self.backend = backend
        do throws(STAKernelError) {
            kernels = try WindowErrorKernels(context: backend.context, cache: backend.engine.cache)
        } catch {
            throw .backend("the search kernels on \(backend.properties.name): \(error)")
        }
    }

    /// A measurer on CUDA device `ordinal` of the shared engine. Throws `backend` when there is no CUDA
    /// driver or device, saying so.
    public convenience init(device ordinal: Int = 0) throws(WindowSearchError) {
        let backend: CUDABackend
        do throws(AttentionError) { backend = try CUDABackend(ordinal: ordinal) } catch {
            throw .backend("the GPU search needs a CUDA device (\(ordinal)): \(error)")
        }
        try self.init(backend: backend)
    }

    /// The dtype attention runs in for tensors stored as `stored` (q, k, v): f16 when all three are f16,
    /// else bf16 (what the CUDA kernels read; f32 and f64 are rounded to it on the device).
    public static func computeDType(stored: [DType]) -> DType {
        stored.allSatisfy { $0 == .float16 } ? .float16 : .bfloat16
    }

    public func prefetch(_ capture: ActivationCapture) {
        capture.adviseWillNeed()
    }

    public func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows
    ) throws(WindowSearchError) -> [[OutputError]] {
        let result: Result<[[OutputError]], WindowSearchError> = state.withLock { state in
            do throws(WindowSearchError) {
                return .success(try measure(capture, candidates: candidates, layout: layout, rows: rows, state: &state))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows, state: inout State
    ) throws(WindowSearchError) -> [[OutputError]] {
        let (batch, heads, headDim) = (capture.batch, capture.heads, capture.headDim)
        let sequenceLength = layout.sequenceLength
        let batchHeads = batch * heads
        let elements = batchHeads * sequenceLength * headDim
        let names = ActivationCapture.tensorNames
        let stored = try names.map { name throws(WindowSearchError) in try capture.storedDType(of: name) }
        let dtype = Self.computeDType(stored: stored)
        let fullWindow = Window(tiles: layout.tileGrid)
        let partials = ErrorPartials(
            candidates: candidates.count, batch: batch, heads: heads,
            blocksPerHead: WindowErrorKernels.blocksPerHead(sequenceLength: sequenceLength),
            elementsPerHead: rows.comparedElements(headDim: headDim))
        let context = backend.context
        let clock = ContinuousClock()
        let start = clock.now

        // 1. q, k, v onto the device, as stored; converted and checked there.
        let counterValues = [UInt64](repeating: 0, count: 6).enumerated().map { $0.offset % 2 == 1 ? UInt64.max : 0 }
        let tensors: [DeviceBuffer]
        let counters: DeviceBuffer
        let rowKinds: DeviceBuffer
        do {
            tensors = try names.map { try buffer("\($0)", bytes: elements * 2, in: &state) }
            counters = try buffer("counters", bytes: 48, in: &state)
            try counters.upload(counterValues)
            rowKinds = try self.rowKinds(rows, in: &state)
            let stagingBytes = zip(stored, names).map { $0.0 == dtype ? 0 : elements * $0.0.byteCount }.max() ?? 0
            let staging = stagingBytes > 0 ? try buffer("staging", bytes: stagingBytes, in: &state) : nil
            for (index, name) in names.enumerated() {
                let target = stored[index] == dtype ? tensors[index] : staging!
                try capture.withStoredBytes(of: name) { bytes in try target.copy(from: bytes) }
                let slot = try DeviceBuffer(borrowing: counters.address + UInt64(16 * index), byteCount: 16, context: context)
                try kernels.prepare(
                    source: target, sourceDType: stored[index], destination: tensors[index],
                    dtype: dtype, rowKinds: rowKinds, rows: batchHeads * sequenceLength, sequenceLength: sequenceLength,
                    headDim: headDim, counters: slot)
            }
            let counts = try counters.download(as: UInt64.self, count: 6)
            state.transferSeconds = seconds(clock.now - start)
            for (index, name) in names.enumerated() where counts[2 * index] > 0 {
                let first = Int(counts[2 * index + 1])
                let bits = try tensors[index].download(as: UInt16.self, count: 1, byteOffset: 2 * first)[0]
                let value = dtype == .float16 ? Double(Float(Float16(bitPattern: bits))) : BFloat16(bitPattern: bits).doubleValue
                throw WindowSearchError.nonFiniteActivation(
                    path: capture.path, name: name, index: rows.position(ofFlatIndex: first, heads: heads, headDim: headDim),
                    value: value, count: Int(counts[2 * index]))
            }
        } catch let error as WindowSearchError {
            throw error
        } catch {
            throw .backend("reading capture '\(capture.path)' onto \(backend.properties.name): \(error)")
        }

        // 2. Full attention once, 3. every candidate against it, 4. the partial sums back.
        let deviceStart = clock.now
        let values: [Double]
        do {
            let full = try buffer("full", bytes: elements * 2, in: &state)
            let sparse = try buffer("sparse", bytes: elements * 2, in: &state)
            let lse = try buffer("lse", bytes: batchHeads * sequenceLength * 4, in: &state)
            let table = try buffer("partials", bytes: partials.valueCount * 8, in: &state)
            try attention(fullWindow, layout: layout, heads: heads, batch: batch, headDim: headDim, dtype: dtype,
                tensors: tensors, output: full, lse: lse, state: &state)
            for (index, candidate) in candidates.enumerated() {
                let output = candidate == fullWindow ? full : sparse
                if candidate != fullWindow {
                    try attention(candidate, layout: layout, heads: heads, batch: batch, headDim: headDim, dtype: dtype,
                        tensors: tensors, output: sparse, lse: lse, state: &state)
                }
                try kernels.errorSums(
                    sparse: output, full: full, dtype: dtype, rowKinds: rowKinds, batchHeads: batchHeads,
                    sequenceLength: sequenceLength, headDim: headDim, partials: table,
                    partialOffset: index * partials.valuesPerCandidate)
            }
            values = try table.download(as: Double.self, count: partials.valueCount)
        } catch let error as WindowSearchError {
            throw error
        } catch {
            throw .backend("measuring capture '\(capture.path)' on \(backend.properties.name): \(error)")
        }
        state.deviceSeconds = seconds(clock.now - deviceStart)

        let errors = partials.errors(values)
        // The full output's size is in every candidate's reference sum; it is finite iff the output is.
        if let first = errors.first, !first.allSatisfy({ $0.squaredReference.isFinite }) {
            throw .nonFiniteOutput(path: capture.path, window: "\(fullWindow) (full)")
        }
        for (index, perHead) in errors.enumerated()
        where !perHead.allSatisfy({ $0.squaredError.isFinite && $0.absoluteError.isFinite }) {
            throw .nonFiniteOutput(path: capture.path, window: "\(candidates[index])")
        }
        return errors
    }

    /// Queues attention under `window` (uniform over `heads`) through the engine.
    private func attention(
        _ window: Window, layout: STALayout, heads: Int, batch: Int, headDim: Int, dtype: DType,
        tensors: [DeviceBuffer], output: DeviceBuffer, lse: DeviceBuffer, state: inout State
    ) throws(WindowSearchError) {
        let key = PlanKey(layout: layout, window: window, heads: heads)
        let plan: AttentionPlan
        if let cached = state.plans[key] {
            plan = cached
        } else {
            do throws(GeometryError) { plan = try AttentionPlan(layout: layout, window: window, heads: heads) } catch {
                throw .geometry(error)
            }
            state.plans[key] = plan
        }
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
