import ArgumentParser
import Testing

@testable import STACommand

/// Every bad input reaches the user as one clear message and a non-zero exit code, never a crash.
@Suite struct BadInputTests {
    /// Parses and runs `arguments`; returns the message and exit status the tool would print and return.
    func failure(_ arguments: [String]) -> (message: String, exitCode: Int32)? {
        let outcome = STA.outcome(arguments)
        guard let message = outcome.message else { return nil }
        return (message, outcome.status.rawValue)
    }

    @Test(arguments: [
        (["plan", "--window", "4x3x3"], "odd"),
        (["plan", "--window", "2x3x3x3"], "1, 2 or 3"),
        (["plan", "--canvas", "0x48x80"], "positive integers"),
        (["plan", "--canvas", "30x48x80", "--tile", "6x8"], "axes"),
        (["plan", "--canvas", "4x48x80", "--tile", "6x8x8"], "at most the canvas size"),
        (["plan", "--text", "10", "--text-valid", "11"], "0...10"),
        (["plan", "--text=-1"], "0 or more"),
        (["plan", "--text", "-1"], "0 or more"),
        (["plan", "--heads", "3", "--window", "3x3x3,1x1x1"], "one per head"),
        (["plan", "--window", "3x3x3*0"], "positive integer"),
        (["plan", "--window", "19x24x23t"], "multiple of the tile"),
        (["plan", "--suite", "sora"], "hunyuan, wan, image"),
        (["plan", "--dtype", "f8"], "bf16, f16 or f32"),
        (["plan", "--heads", "0"], "at least 1"),
        (["render", "--family", "diagonal"], "sta, natten"),
        (["analyze", "--query-block", "0"], "at least 1"),
        (["bench", "--only", "nothing-matches"], "no problem matches"),
    ])
    func rejected(_ arguments: [String], _ expected: String) throws {
        let result = try #require(failure(arguments), "\(arguments) was accepted")
        #expect(result.message.contains(expected), "\(arguments): \(result.message)")
        #expect(result.exitCode != 0)
    }

    @Test func acceptsTheSuitesAndTheTokenWindows() throws {
        #expect(failure(["plan", "--suite", "hunyuan"]) == nil)
        #expect(failure(["plan", "--suite", "wan", "--json"]) == nil)
        #expect(failure(["plan", "--window", "18x24x24t"]) == nil)
        #expect(failure(["plan", "--heads", "24", "--window", "5x3x3*10,1x6x10*8,3x3x5*3,5x1x10*2,5x6x1"]) == nil)
    }
}
