/// Error sums a device computes in pieces: for every candidate, (batch·head, block of rows) triples
/// [Σ (sparse − full)², Σ |sparse − full|, Σ full²], added up in one fixed order (candidate, head, then
/// batch entry and block ascending) so that a result does not depend on how the device scheduled the
/// blocks. `CUDAWindowMeasurer` adds the blocks on the device (`WindowErrorKernels.sumBlocks`, the same
/// order) and uses this with one block per (batch entry, head) for the rest.
public struct ErrorPartials: Sendable {
    /// Candidates measured.
    public let candidates: Int
    /// Batch entries of the capture.
    public let batch: Int
    /// Heads of the capture.
    public let heads: Int
    /// Blocks of rows per (batch entry, head).
    public let blocksPerHead: Int
    /// Compared elements per (batch entry, head): compared rows × head dim.
    public let elementsPerHead: Int

    public init(candidates: Int, batch: Int, heads: Int, blocksPerHead: Int, elementsPerHead: Int) {
        self.candidates = candidates
        self.batch = batch
        self.heads = heads
        self.blocksPerHead = blocksPerHead
        self.elementsPerHead = elementsPerHead
    }

    /// Doubles of one candidate's table: 3 · batch · heads · blocksPerHead.
    public var valuesPerCandidate: Int { 3 * batch * heads * blocksPerHead }

    /// Doubles of the whole table.
    public var valueCount: Int { candidates * valuesPerCandidate }

    /// The per-(candidate, head) errors, `[candidate][head]`, summed over batch entries and blocks;
    /// `values` is the table, laid out (candidate, batch·head, block, triple). Each error's element
    /// count is batch · `elementsPerHead`. Precondition: `values.count == valueCount`.
    public func errors(_ values: [Double]) -> [[OutputError]] {
        precondition(values.count == valueCount, "\(values.count) partial sums for a table of \(valueCount)")
        return (0..<candidates).map { candidate in
            (0..<heads).map { head in
                var error = OutputError()
                for b in 0..<batch {
                    let start = candidate * valuesPerCandidate + ((b * heads + head) * blocksPerHead) * 3
                    for block in 0..<blocksPerHead {
                        error.squaredError += values[start + 3 * block]
                        error.absoluteError += values[start + 3 * block + 1]
                        error.squaredReference += values[start + 3 * block + 2]
                    }
                    error.elementCount += elementsPerHead
                }
                return error
            }
        }
    }
}
