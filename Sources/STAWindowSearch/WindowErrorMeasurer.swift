import STAGeometry

/// Measures the window errors of one capture for `WindowSearch`, in place of its CPU path: the error of
/// every candidate window on every head against full attention, `[candidate][head]`, summed over the
/// batch, over `rows.compared` — exactly what `WindowSearch.measure(q:k:v:batch:heads:headDim:source:)`
/// returns for the capture's tensors. `CUDAWindowMeasurer` is the GPU one.
///
/// A measurer throws `nonFiniteActivation` for a capture with NaN or ±∞ in a row attention reads
/// (`rows.read`) and `nonFiniteOutput` for a non-finite output, naming the capture, as the CPU path does.
public protocol WindowErrorMeasurer: AnyObject, Sendable {
    /// The errors of `candidates` (resolved windows of `layout`) on `capture`. `next` is the capture to be
    /// measured after this one, if any: a measurer may start reading it (e.g. ask the OS to read the file
    /// ahead) once it is done reading `capture`, so the read overlaps this capture's kernels.
    func measure(
        _ capture: ActivationCapture, candidates: [Window], layout: STALayout, rows: SearchRows, next: ActivationCapture?
    ) throws(WindowSearchError) -> [[OutputError]]
}
