import SlidingTileAttention
import Synchronization

/// What an `sta_plan*` points to: an attention plan and the permutation tables of its layout. Immutable,
/// so one handle may serve several threads. (Compiled kernels live in `CUDAEngine.shared`.)
final class PlanHandle: Sendable {
    let plan: AttentionPlan
    /// For each tile-order video position (holes included), the raster index of its token or −1.
    let rasterIndexBySequenceIndex: [Int32]
    /// For each raster video token, its tile-order sequence index.
    let sequenceIndexByRasterIndex: [Int64]

    /// Builds the tables. Cost: O(padded video tokens).
    init(plan: AttentionPlan) {
        self.plan = plan
        let map = plan.layout.rasterIndexBySequenceIndex()
        var inverse = [Int64](repeating: 0, count: plan.layout.videoTokenCount)
        for (sequenceIndex, raster) in map.enumerated() where raster >= 0 {
            inverse[Int(raster)] = Int64(sequenceIndex)
        }
        self.rasterIndexBySequenceIndex = map
        self.sequenceIndexByRasterIndex = inverse
    }

    var layout: STALayout { plan.layout }
    /// Tokens of a raster-order tensor: real video tokens then text.
    var rasterLength: Int { layout.videoTokenCount + layout.text.count }
}

/// The live plan handles, so that a NULL, foreign or already destroyed `sta_plan*` is reported instead
/// of dereferenced.
///
/// The pointer a caller sees is not an address but a number that is never reused (a multiple of 16 from
/// a fixed base), so a stale handle stays invalid even after its memory is reused.
enum HandleRegistry {
    private struct Table {
        var handles: [UInt: PlanHandle] = [:]
        var nextKey: UInt = 0x5354_4100_0000
    }

    private static let table = Mutex(Table())

    /// Registers `handle` and returns the opaque pointer the caller sees.
    static func register(_ handle: PlanHandle) -> OpaquePointer {
        let key = table.withLock { table in
            let key = table.nextKey
            table.nextKey += 16
            table.handles[key] = handle
            return key
        }
        return OpaquePointer(bitPattern: key)!
    }

    /// The handle behind `pointer`, or `invalidHandle`.
    static func lookup(_ pointer: OpaquePointer?) throws(CInterfaceError) -> PlanHandle {
        let key = try key(of: pointer)
        guard let handle = table.withLock({ $0.handles[key] }) else { throw stale(key) }
        return handle
    }

    /// Removes the handle behind `pointer`, or throws `invalidHandle`. The object is freed when the last
    /// call still using it returns.
    static func remove(_ pointer: OpaquePointer?) throws(CInterfaceError) {
        let key = try key(of: pointer)
        guard table.withLock({ $0.handles.removeValue(forKey: key) }) != nil else { throw stale(key) }
    }

    /// Handles currently alive (for tests).
    static var count: Int { table.withLock { $0.handles.count } }

    private static func key(of pointer: OpaquePointer?) throws(CInterfaceError) -> UInt {
        guard let pointer else {
            throw CInterfaceError(.invalidHandle, "the plan handle is NULL; create one with sta_plan_create")
        }
        return UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(pointer)))
    }

    private static func stale(_ key: UInt) -> CInterfaceError {
        CInterfaceError(
            .invalidHandle,
            "the plan handle 0x\(String(key, radix: 16)) is not a live plan "
                + "(never returned by sta_plan_create, or already destroyed)")
    }
}
