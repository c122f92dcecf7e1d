import STAGeometry
import Testing

@testable import STAWindowSearch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite struct MaskStrategyTests {
    func sample() -> MaskStrategy {
        var strategy = MaskStrategy()
        strategy[step: 10, layer: 0, head: 0] = Window(tiles: [1, 6, 10])
        strategy[step: 0, layer: 1, head: 2] = Window(tiles: [3, 3, 5])
        strategy[step: 0, layer: 1, head: 0] = Window(tiles: [5, 6, 10])
        strategy[step: 0, layer: 1, head: 1] = Window(tiles: [5, 3, 3])
        return strategy
    }

    @Test func writesTheFlatFastVideoFormatSortedNumerically() {
        #expect(sample().jsonText == """
            {
              "0_1_0": [5, 6, 10],
              "0_1_1": [5, 3, 3],
              "0_1_2": [3, 3, 5],
              "10_0_0": [1, 6, 10]
            }

            """)
        #expect(MaskStrategy().jsonText == "{}\n")
    }

    @Test func roundTripsThroughAFile() throws {
        let path = "/tmp/sta-search-strategy-\(getpid()).json"
        defer { unlink(path) }
        try sample().write(path: path)
        let read = try MaskStrategy.read(path: path)
        #expect(read == sample())
        #expect(try read.windows(step: 0, layer: 1) == [
            Window(tiles: [5, 6, 10]), Window(tiles: [5, 3, 3]), Window(tiles: [3, 3, 5]),
        ])
        #expect(throws: WindowSearchError.self) { try MaskStrategy.read(path: path + ".missing") }
    }

    @Test func readsCompactAndSpacedJSON() throws {
        let strategy = try MaskStrategy(jsonText: "{\"15_59_23\":[5,6,1],\n\t\"0_0_0\" : [ 3 , 3 , 3 ] }")
        #expect(strategy.count == 2)
        #expect(strategy[step: 15, layer: 59, head: 23] == Window(tiles: [5, 6, 1]))
        #expect(strategy[step: 0, layer: 0, head: 0] == Window(tiles: [3, 3, 3]))
        #expect(try MaskStrategy(jsonText: " {} ").count == 0)
        // Two-dimensional windows (images) have two sizes.
        #expect(try MaskStrategy(jsonText: "{\"0_0_0\": [5, 5]}")[step: 0, layer: 0, head: 0] == Window(tiles: [5, 5]))
    }

    @Test(arguments: [
        ("{\"0_0\": [3, 3, 3]}", "<step>_<layer>_<head>"),
        ("{\"a_0_0\": [3, 3, 3]}", "<step>_<layer>_<head>"),
        ("{\"-1_0_0\": [3, 3, 3]}", "<step>_<layer>_<head>"),
        ("{\"0_0_0\": [3, 0, 3]}", "positive integers"),
        ("{\"0_0_0\": [3, -1, 3]}", "positive integers"),
        ("{\"0_0_0\": [3, 3, 3, 3]}", "1 to 3"),
        ("{\"0_0_0\": \"3x3x3\"}", "positive integers"),
        ("{\"0_0_0\": [3, 2.5, 3]}", "positive integers"),
        ("{\"0_0_0\": [3, 3, 3], \"0_0_0\": [1, 1, 1]}", "repeats"),
        ("{\"0_0_0\": [3, 3, 3]} x", "after the JSON value"),
        ("[[3, 3, 3]]", "not a JSON object"),
        ("{\"0_0_0\": [3, 3, 3],}", "key"),
        ("", "malformed"),
    ])
    func rejectsMalformedText(text: String, expected: String) {
        do {
            _ = try MaskStrategy(jsonText: text, path: "s.json")
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(text): \(error)")
            #expect(error.description.contains("'s.json'"))
        }
    }

    @Test func aLargeStrategyRoundTrips() throws {
        // 5 steps × 60 layers × 24 heads (the released HunyuanVideo strategy has 50 steps).
        let windows = [Window(tiles: [5, 3, 3]), Window(tiles: [1, 6, 10]), Window(tiles: [3, 3, 5])]
        var strategy = MaskStrategy()
        for step in 0..<5 {
            for layer in 0..<60 {
                for head in 0..<24 { strategy[step: step, layer: layer, head: head] = windows[(step + layer + head) % 3] }
            }
        }
        let text = strategy.jsonText
        #expect(text.hasPrefix("{\n  \"0_0_0\": [5, 3, 3],\n  \"0_0_1\": [1, 6, 10],"))
        let read = try MaskStrategy(jsonText: text)
        #expect(read.count == 5 * 60 * 24)
        #expect(read == strategy)
        #expect(try read.windows(step: 4, layer: 59).count == 24)
    }

    @Test func windowsNeedEveryHeadFromZero() throws {
        var strategy = sample()
        strategy[step: 0, layer: 1, head: 1] = nil
        #expect(strategy.count == 3)
        do {
            _ = try strategy.windows(step: 0, layer: 1)
            Issue.record("heads 0 and 2 without 1 were accepted")
        } catch {
            #expect(error.description.contains("head 1 is missing"), "\(error)")
        }
        #expect(throws: WindowSearchError.self) { try strategy.windows(step: 3, layer: 0) }
    }

    @Test func aSearchResultRoundTripsAndEveryStepLayerHasEveryHead() throws {
        let search = try WindowSearchTests.localGlobal.get()
        let strategy = try search.result(.densityBudget(0.4)).strategy
        #expect(try MaskStrategy(jsonText: strategy.jsonText) == strategy)
        for pair in strategy.stepLayers {
            #expect(try strategy.windows(step: pair.step, layer: pair.layer).count == 2)
        }
    }
}
