import STAGeometry
import STATensors
import Testing

@testable import STAWindowSearch

/// Captures with NaN or infinities are rejected with the capture's path and the tensor named; they
/// never reach the selection as error 0.
@Suite struct NonFiniteCaptureTests {
    func capture(poisoning name: String, at index: Int, with value: Float) throws -> ActivationCapture {
        let layout = try smallLayout()
        var (q, k, v) = syntheticActivations(layout: layout, kinds: localAndGlobal, seed: 21)
        switch name {
        case "q": q[index] = value
        case "k": k[index] = value
        default: v[index] = value
        }
        let shape = [1, 2, layout.sequenceLength, 16]
        let bytes = try ActivationCapture.encode(
            q: tensor(q, shape), k: tensor(k, shape), v: tensor(v, shape), step: 20, layer: 3, prompt: "cat")
        return try ActivationCapture(file: SafetensorsFile(bytes: bytes, name: "captures/step20-layer3.safetensors"), layout: layout)
    }

    @Test(arguments: ["q", "k", "v"])
    func nanOrInfinityIsRejectedNamingCaptureAndTensor(name: String) throws {
        // Element 5 of row 7 of head 1: index ((0 · 2 + 1) · 256 + 7) · 16 + 5.
        let index = (256 + 7) * 16 + 5
        for value in [Float.nan, .infinity, -.infinity] {
            var search = try WindowSearch(layout: smallLayout(), fullSteps: 0, threads: 2)
            let poisoned = try capture(poisoning: name, at: index, with: value)
            do {
                try search.add(poisoned)
                Issue.record("a capture with \(value) in \(name) was accepted")
            } catch {
                guard case let .nonFiniteActivation(path, tensor, position, _, count) = error else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
                #expect(path == "captures/step20-layer3.safetensors" && tensor == name)
                #expect(position == [0, 1, 7, 5] && count == 1)
                #expect(error.description.contains("captures/step20-layer3.safetensors"))
                #expect(error.description.contains("tensor '\(name)'"))
            }
            // No error was recorded for the capture.
            #expect(search.errors.isEmpty)
        }
    }

    @Test func aBackendThatOverflowsIsRejected() throws {
        let layout = try smallLayout()
        let (q, k, v) = syntheticActivations(layout: layout, kinds: localAndGlobal, seed: 22)
        let search = try WindowSearch(layout: layout, candidates: [Window(tiles: [1, 1, 1])]) { plan, _, _, q, _, _ in
            [Float](repeating: plan.window(head: 0) == Window(tiles: layout.tileGrid) ? 1 : .infinity, count: q.count)
        }
        #expect(throws: WindowSearchError.nonFiniteOutput(path: "x.safetensors", window: "\(Window(tiles: [1, 1, 1]))")) {
            try search.measure(q: q, k: k, v: v, batch: 1, heads: 2, headDim: 16, source: "x.safetensors")
        }
    }
}
