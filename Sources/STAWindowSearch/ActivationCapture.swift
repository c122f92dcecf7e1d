import STAGeometry
import STATensors

/// The q, k and v of one attention call of a video model — one (prompt, denoising step, layer) — saved
/// for the window search.
///
/// **Capture format.** A `.safetensors` file with
/// - tensors `q`, `k`, `v`: [B, H, S, D] each, the same shape, dtype F32, F16, BF16 or F64, where
///   S = `layout.sequenceLength`: the video tokens in tile-contiguous order (holes included, see spec
///   §2), then the text tokens;
/// - metadata (`__metadata__`, strings): `step` and `layer`, non-negative integers (`"17"`), and
///   `prompt`, any non-empty id (`"3"`, `"a-cat"`).
///
/// A PyTorch forward hook on the attention call can write one per call, e.g.
///
/// ```python
/// from safetensors.torch import save_file
/// # q, k, v: [B, H, S, D], video tokens already in tile order, then text
/// save_file({"q": q.contiguous(), "k": k.contiguous(), "v": v.contiguous()},
///           f"captures/step{step:02d}_layer{layer:02d}_prompt{prompt}.safetensors",
///           metadata={"step": str(step), "layer": str(layer), "prompt": str(prompt)})
/// ```
///
/// Opening validates the header, the shapes and the metadata (O(header)); `tensors()` reads the data.
public struct ActivationCapture: Sendable {
    /// The file path (or the buffer name).
    public var path: String { file.path }
    public let step: Int
    public let layer: Int
    public let prompt: String
    public let batch: Int
    public let heads: Int
    public let headDim: Int
    private let file: SafetensorsFile

    /// The tensor names a capture must hold.
    public static let tensorNames = ["q", "k", "v"]

    /// Opens and validates the capture at `path` for `layout`.
    public init(path: String, layout: STALayout) throws(WindowSearchError) {
        let file: SafetensorsFile
        do throws(TensorError) { file = try SafetensorsFile(path: path) } catch { throw .tensor(error) }
        try self.init(file: file, layout: layout)
    }

    /// Validates an opened `.safetensors` file as a capture for `layout`.
    public init(file: SafetensorsFile, layout: STALayout) throws(WindowSearchError) {
        let path = file.path
        var shape: [Int]? = nil
        for name in Self.tensorNames {
            guard file.tensorNames.contains(name) else {
                throw .missingTensor(path: path, name: name, present: file.tensorNames)
            }
            let info: SafetensorsTensorInfo
            do throws(TensorError) { info = try file.info(name) } catch { throw .tensor(error) }
            guard info.dtype.isFloatingPoint else {
                throw .notFloatingPoint(path: path, name: name, dtype: info.dtype)
            }
            let expected = "[B, H, \(layout.sequenceLength), D] (S = sequence length of \(layout))"
            guard info.shape.count == 4, info.shape[2] == layout.sequenceLength,
                info.shape.allSatisfy({ $0 >= 1 })
            else {
                throw .shapeMismatch(path: path, name: name, shape: info.shape, expected: expected)
            }
            if let shape, shape != info.shape {
                throw .shapeMismatch(path: path, name: name, shape: info.shape, expected: "\(shape), the shape of q")
            }
            shape = info.shape
        }
        func integer(_ key: String) throws(WindowSearchError) -> Int {
            let text = file.metadata[key]
            guard let text, !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text)
            else { throw .badMetadata(path: path, key: key, value: text) }
            return value
        }
        self.step = try integer("step")
        self.layer = try integer("layer")
        guard let prompt = file.metadata["prompt"], !prompt.isEmpty else {
            throw .badMetadata(path: path, key: "prompt", value: file.metadata["prompt"])
        }
        self.prompt = prompt
        let dimensions = shape ?? []
        self.batch = dimensions[0]
        self.heads = dimensions[1]
        self.headDim = dimensions[3]
        self.file = file
    }

    /// q, k and v as `Float`, [B, H, S, D] each. Cost: reads the tensors once, 4 bytes per element each.
    public func tensors() throws(WindowSearchError) -> (q: [Float], k: [Float], v: [Float]) {
        do throws(TensorError) {
            return (try file.tensor("q").floats(), try file.tensor("k").floats(), try file.tensor("v").floats())
        } catch {
            throw .tensor(error)
        }
    }

    /// The dtype tensor `name` (q, k or v) is stored in.
    public func storedDType(of name: String) throws(WindowSearchError) -> DType {
        do throws(TensorError) { return try file.info(name).dtype } catch { throw .tensor(error) }
    }

    /// Calls `body` with tensor `name`'s bytes as stored ([B, H, S, D] in `storedDType(of:)`, little
    /// endian), inside the file's memory mapping: no copy; pages are read from disk as `body` touches
    /// them. The pointer is valid only during the call. Errors of `body` propagate unchanged.
    public func withStoredBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file.withUnsafeBytes(of: name) { (bytes: UnsafeRawBufferPointer) throws -> R in try body(bytes) }
    }

    /// The bytes of a capture file (f32 tensors) — what a hook would write; for tests and tools.
    public static func encode(
        q: HostTensor, k: HostTensor, v: HostTensor, step: Int, layer: Int, prompt: String
    ) throws(WindowSearchError) -> [UInt8] {
        do throws(TensorError) {
            return try SafetensorsFile.encode(
                ["q": q, "k": k, "v": v], metadata: ["step": String(step), "layer": String(layer), "prompt": prompt])
        } catch {
            throw .tensor(error)
        }
    }
}
