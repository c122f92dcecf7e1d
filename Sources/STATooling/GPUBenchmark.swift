import SlidingTileAttention
import CUDADriver
import STACUDAKernels
import STAGeometry
import STATensors

/// Times the CUDA forward kernel on the problems of a suite: CUDA events around each launch after
/// warm-up, median of the repetitions.
public enum GPUBenchmark {
    public struct Measurement: Sendable {
        public let problem: String
        public let kernel: AttentionKernel
        public let sequenceLength: Int
        public let videoSparsity: Double
        public let medianMilliseconds: Double
        public let minMilliseconds: Double
        public let effectiveFLOPs: Double
        public var teraFLOPsPerSecond: Double { effectiveFLOPs / (medianMilliseconds * 1e-3) / 1e12 }
    }

    /// The idle time before each timing, in milliseconds: long enough for the clock to recover from the
    /// previous problem at the board's power limit, so that every problem starts from an idle card, as the
    /// matrix-product rate it is compared with does (`matrixProductRate`'s pause), and no figure depends on
    /// the order of the problems (on the H200, hunyuan mixed right after 5×5×5: 42.0 ms; alone: 39.4 ms).
    public static let defaultPauseMilliseconds = 2000

    /// Runs each problem with each kernel of `kernels`, `repetitions` times after `warmups` launches,
    /// each after `pauseMilliseconds` of idle. Inputs are random in [-1, 1), drawn once per distinct
    /// shape, and kept on the device.
    public static func run(
        problems: [AttentionProblem], kernels: [AttentionKernel], on gpu: CUDABackend, warmups: Int = 3,
        repetitions: Int = 10, pauseMilliseconds: Int = defaultPauseMilliseconds, progress: (String) -> Void = { _ in }
    ) throws -> [Measurement] {
        var measurements = [Measurement]()
        var inputs: (key: String, q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer)?
        for problem in problems {
            let plan = try problem.plan()
            let attention = try SlidingTileAttention(plan: plan, batch: problem.batch, headDim: problem.headDim)
            let shapeKey = "\(attention.elementCount) \(problem.dtype)"
            if inputs?.key != shapeKey {
                inputs = nil
                progress("drawing \(3 * attention.elementCount) random inputs")
                let drawn = try draw(3, of: problem, elements: attention.elementCount, seed: 0x5EED, on: gpu)
                inputs = (shapeKey, drawn[0], drawn[1], drawn[2])
            }
            guard let (_, q, k, v) = inputs else { continue }
            for choice in kernels {
            progress("compiling \(problem.name), \(choice) kernel")
            let preference = try KernelPreference(name: choice.rawValue)
            let output = try DeviceBuffer(context: gpu.context, byteCount: attention.elementCount * 2)
            let lse = try DeviceBuffer(context: gpu.context, byteCount: attention.rowCount * 4)
            let stream = try CUDAStream(context: gpu.context)
            func launch() throws {
                try gpu.engine.forward(
                    plan: plan, batch: problem.batch, headDim: problem.headDim, dtype: problem.dtype, q: q, k: k, v: v,
                    output: output, lse: lse, stream: stream, kernel: preference)
            }
            let times = try eventTimes(
                on: stream, warmups: warmups, repetitions: repetitions, pauseMilliseconds: pauseMilliseconds, launch)
            let measurement = Measurement(
                problem: problem.name, kernel: choice, sequenceLength: problem.layout.sequenceLength,
                videoSparsity: plan.videoSparsity, medianMilliseconds: times[times.count / 2],
                minMilliseconds: times[0], effectiveFLOPs: plan.effectiveFLOPs(batch: problem.batch, headDim: problem.headDim))
            progress("\(problem.name), \(choice): \(measurement.medianMilliseconds) ms")
            measurements.append(measurement)
            }
        }
        return measurements
    }
}

extension GPUBenchmark {
    /// Times the backward kernels of `kernels` (dq, dk, dv from the forward's output and lse) on each
    /// problem: CUDA events around each launch after `warmups`, median of `repetitions`. Effective FLOPs
    /// are 2.5 × the forward's, by convention. Inputs are random in [-1, 1); the forward runs once per
    /// problem (automatic kernel) and each backward kernel gets its own workspace; each timing follows
    /// `pauseMilliseconds` of idle, as in `run`.
    public static func runBackward(
        problems: [AttentionProblem], kernels: [AttentionKernel] = [.portable], on gpu: CUDABackend, warmups: Int = 2,
        repetitions: Int = 5, pauseMilliseconds: Int = defaultPauseMilliseconds, progress: (String) -> Void = { _ in }
    ) throws -> [Measurement] {
        var measurements = [Measurement]()
        for problem in problems {
            let plan = try problem.plan()
            let attention = try SlidingTileAttention(plan: plan, batch: problem.batch, headDim: problem.headDim)
            progress("drawing inputs and compiling \(problem.name)")
            let drawn = try draw(4, of: problem, elements: attention.elementCount, seed: 0xBAC4, on: gpu)
            let (q, k, v, outputGradient) = (drawn[0], drawn[1], drawn[2], drawn[3])
            let output = try DeviceBuffer(context: gpu.context, byteCount: attention.elementCount * 2)
            let lse = try DeviceBuffer(context: gpu.context, byteCount: attention.rowCount * 4)
            let gradients = try (0..<3).map { _ in
                try DeviceBuffer(context: gpu.context, byteCount: attention.elementCount * problem.dtype.byteCount)
            }
            let stream = try CUDAStream(context: gpu.context)
            try gpu.engine.forward(
                plan: plan, batch: problem.batch, headDim: problem.headDim, dtype: problem.dtype, q: q, k: k, v: v,
                output: output, lse: lse, stream: stream)
            for choice in kernels {
                progress("compiling \(problem.name) backward, \(choice) kernel")
                let preference = try KernelPreference(name: choice.rawValue)
                let workspace = try DeviceBuffer(
                    context: gpu.context,
                    byteCount: max(1, try gpu.engine.backwardWorkspaceByteCount(
                        plan: plan, batch: problem.batch, headDim: problem.headDim, dtype: problem.dtype,
                        device: gpu.ordinal, kernel: preference)))
                var kernel = choice
                func launch() throws {
                    kernel = try gpu.engine.backward(
                        plan: plan, batch: problem.batch, headDim: problem.headDim, dtype: problem.dtype, q: q, k: k,
                        v: v, output: output, lse: lse, outputGradient: outputGradient, dq: gradients[0],
                        dk: gradients[1], dv: gradients[2], workspace: workspace, stream: stream, kernel: preference)
                }
                let times = try eventTimes(
                    on: stream, warmups: warmups, repetitions: repetitions, pauseMilliseconds: pauseMilliseconds, launch)
                let measurement = Measurement(
                    problem: problem.name + " backward", kernel: kernel, sequenceLength: problem.layout.sequenceLength,
                    videoSparsity: plan.videoSparsity, medianMilliseconds: times[times.count / 2],
                    minMilliseconds: times[0],
                    effectiveFLOPs: 2.5 * plan.effectiveFLOPs(batch: problem.batch, headDim: problem.headDim))
                progress("\(measurement.problem), \(kernel): \(measurement.medianMilliseconds) ms")
                measurements.append(measurement)
            }
        }
        return measurements
    }

    /// The bf16 matrix-product rate of this GPU through cuBLAS: C = A·B at `size`³ on random inputs, median
    /// of 10 event-timed runs after 3 warm-ups. The ceiling effective TFLOP/s figures are compared with.
    /// With `pauseMilliseconds` > 0 the timing starts after that long idle, as each problem's does, so
    /// that the rate does not depend on what ran before (a previous process at the power limit).
    /// Run from idle, the product often meets a clock that a kernel running for tens of milliseconds at the
    /// board's power limit does not: `sustainMilliseconds` > 0 first runs it back to back for that long
    /// (give one or the other: a pause after it would undo it).
    public static func matrixProductRate(
        on gpu: CUDABackend, size: Int = 8192, sustainMilliseconds: Double = 0, pauseMilliseconds: Int = 0
    ) throws -> (milliseconds: Double, teraFLOPsPerSecond: Double) {
        let blas = try CUBLAS(context: gpu.context)
        var random = RandomInputs(seed: 0xB1A5)
        let a = try gpu.upload(random.values(size * size, as: BFloat16.self))
        let b = try gpu.upload(random.values(size * size, as: BFloat16.self))
        let c = try DeviceBuffer(context: gpu.context, byteCount: size * size * 2)
        let stream = try CUDAStream(context: gpu.context)
        let product = { try blas.multiplyBF16(m: size, n: size, k: size, a: a, b: b, c: c, stream: stream) }
        var sustained = 0.0
        while sustained < sustainMilliseconds {
            // Batches of 16 products between two events, with no gap for the host.
            sustained += try eventTimes(on: stream, warmups: 0, repetitions: 1) {
                for _ in 0..<16 { try product() }
            }[0]
        }
        let times = try eventTimes(on: stream, warmups: 3, repetitions: 10, pauseMilliseconds: pauseMilliseconds, product)
        let median = times[times.count / 2]
        return (median, 2 * Double(size) * Double(size) * Double(size) / (median * 1e-3) / 1e12)
    }

    /// `count` device tensors of `elements` random values in [-1, 1) in the problem's dtype (f16, else bf16).
    static func draw(
        _ count: Int, of problem: AttentionProblem, elements: Int, seed: UInt64, on gpu: CUDABackend
    ) throws -> [DeviceBuffer] {
        var random = RandomInputs(seed: seed)
        return try (0..<count).map { _ in
            problem.dtype == .float16
                ? try gpu.upload(random.values(elements, as: Float16.self))
                : try gpu.upload(random.values(elements, as: BFloat16.self))
        }
    }

    /// Runs `launch` `warmups` times, waits, then times `repetitions` runs with CUDA events on `stream`.
    /// With `pauseMilliseconds` > 0, first runs it once (a compile or module load stays out of the pause)
    /// and idles that long. Returns the times in milliseconds, sorted ascending.
    static func eventTimes(
        on stream: CUDAStream, warmups: Int, repetitions: Int, pauseMilliseconds: Int = 0, _ launch: () throws -> Void
    ) throws -> [Double] {
        if pauseMilliseconds > 0 {
            try launch()
            try stream.synchronize()
            MonotonicClock.sleep(milliseconds: pauseMilliseconds)
        }
        for _ in 0..<warmups { try launch() }
        try stream.synchronize()
        let start = try CUDAEvent(context: stream.context)
        let stop = try CUDAEvent(context: stream.context)
        var times = [Double]()
        for _ in 0..<repetitions {
            try start.record(on: stream)
            try launch()
            try stop.record(on: stream)
            try stop.synchronize()
            times.append(Double(try stop.milliseconds(since: start)))
        }
        return times.sorted()
    }
}
