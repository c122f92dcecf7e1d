import STAGeometry
import Testing

@testable import STACUDAKernels

@Suite struct VisitOrderTests {
    /// (outer, middle, inner) of a packed order.
    func axes(_ packed: Int32) -> [Int] { [Int(packed & 3), Int(packed >> 2 & 3), Int(packed >> 4 & 3)] }

    /// On hunyuan's 5×6×10 grid each window gets the order in which the tiles it reaches lie closest:
    /// cubic windows take w outermost and t innermost, windows that span h and w whole keep row-major, a
    /// window one tile high takes h outermost; heads that share a window share its order.
    @Test func ordersFollowTheWindow() throws {
        let layout = try STALayout(canvas: [30, 48, 80], tile: [6, 8, 8], textCount: 256)
        let windows = [[3, 3, 3], [5, 5, 5], [1, 6, 10], [5, 1, 10], [3, 3, 3]].map { Window(tiles: $0) }
        let plan = try AttentionPlan(layout: layout, headWindows: windows)
        let orders = plan.visitOrderByHead.map(axes)
        #expect(orders[0] == [2, 1, 0] && orders[1] == [2, 1, 0])
        #expect(orders[2] == [0, 1, 2])
        #expect(orders[3][0] == 1)
        #expect(orders[4] == orders[0])
        for order in orders { #expect(Set(order) == [0, 1, 2]) }
    }

    /// Square 2D grids and 1D layouts keep row-major order (ties go to it).
    @Test func squareAndOneDimensionalLayoutsKeepRowMajor() throws {
        let image = try AttentionPlan(
            layout: STALayout(canvas: [128, 128], tile: [8, 8]), window: Window(tiles: [5, 5]), heads: 2)
        #expect(image.visitOrderByHead == [36, 36])
        let line = try AttentionPlan(layout: STALayout(canvas: [1000], tile: [64]), window: Window(tiles: [5]), heads: 1)
        #expect(line.visitOrderByHead == [36])
    }
}
