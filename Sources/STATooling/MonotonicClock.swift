#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time from the monotonic clock, in seconds. Cost: one `clock_gettime` call.
public enum MonotonicClock {
    /// Seconds since an arbitrary fixed point; only differences mean something.
    public static var now: Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// Milliseconds elapsed since `start` (a value of `now`).
    public static func milliseconds(since start: Double) -> Double { (now - start) * 1e3 }

    /// Blocks the calling thread for `milliseconds` (≥ 0) of wall-clock time.
    public static func sleep(milliseconds: Int) {
        var remaining = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&remaining, &left) != 0 { remaining = left }  // resumes after a signal
    }
}
