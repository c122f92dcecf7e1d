import STAGeometry

/// Measures the window errors of one capture for `WindowSearch`, in place of its CPU path: the error of
/// every candidate window on every head against full attention, `[candidate][head]`, summed over the
/// batch, over `rows.compared` — exactly what `WindowSearch.measure(q:k:v:batch:heads:headDim:source:)`
/// returns for the capture's tensors. `CUDAWindowMeasurer` is the GPU one.
///
/// A measurer throws `nonFiniteActivation` for a capture with NaN or ±∞ in a row attention reads
/// (`rows.read`) and `nonFiniteOutput` for a non-finite output, naming the capture, as the CPU path does.
public protocol WindowErrorMeasurer: AnyObject, Sendable {
    /// The errors of `candidates` (resolved windows of `layout`) on `capture`.
    func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows
    ) throws(WindowSearchError) -> [[OutputError]]

    /// A hint that `capture` is measured next: a measurer may start reading it (e.g. ask the OS to read
    /// the file ahead) while the current one runs. Must not throw or block.
    func prefetch(_ capture: ActivationCapture)
}

extension WindowErrorMeasurer {
    public func prefetch(_ capture: ActivationCapture) {}
}
