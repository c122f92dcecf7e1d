import CUDADriver

/// A kernel's CUDA C++ translation unit as NVRTC compiles it: the main file and the headers it includes
/// (`#include "name"`), all embedded in the module from `Kernels/`.
public struct KernelSource: Sendable {
    /// A header the main file (or another header) includes by `name`.
    public struct Header: Sendable {
        public let name: String
        public let text: String
    }

    /// The main file's name (NVRTC's diagnostics name it).
    public let name: String
    /// The main file's text.
    public let text: String
    /// Every header the translation unit may include. The kernel cache's key covers their contents.
    public let headers: [Header]

    /// The headers in the form `NVRTCCompiler.compile` and `KernelCache.image` take.
    public var nvrtcHeaders: [(name: String, source: String)] { headers.map { ($0.name, $0.text) } }

    /// Compiles the translation unit with `options` (a CUBIN when they name an `sm_` target, PTX for a
    /// `compute_` one). Cost: one NVRTC compile, about 0.1–10 s.
    public func compile(with compiler: NVRTCCompiler, options: [String]) throws(CUDAError) -> CompiledKernel {
        try compiler.compile(source: text, sourceName: name, options: options, headers: nvrtcHeaders)
    }

    /// The image from `cache` (compiled on a miss) for `architecture`, e.g. "sm_90a".
    func image(cache: KernelCache, options: [String], architecture: String, context: CUDAContext) throws(CUDAError) -> [UInt8] {
        try cache.image(
            source: text, sourceName: name, headers: nvrtcHeaders, options: options, architecture: architecture,
            driverVersion: context.driverVersion,
            compiler: { () throws(CUDAError) -> NVRTCCompiler in try NVRTCCompiler.load() })
    }
}

extension KernelSource.Header {
    /// Types, problem constants, holes, text and the PTX wrappers of every architecture.
    static var common: Self { .init(name: "sta_common.cuh", text: embedded("sta_common.cuh", PackageResources.sta_common_cuh)) }
    /// The portable kernels' PTX wrappers and swizzled shared-memory tiles.
    static var sm80: Self { .init(name: "sta_sm80.cuh", text: embedded("sta_sm80.cuh", PackageResources.sta_sm80_cuh)) }
    /// The Hopper kernel's pieces: PTX wrappers, shape, work decoding, consumer math, the producer and
    /// consumer main loops, the epilogue.
    static var sm90: [Self] {
        [
            .init(name: "sta_sm90_ptx.cuh", text: embedded("sta_sm90_ptx.cuh", PackageResources.sta_sm90_ptx_cuh)),
            .init(name: "sta_sm90_shape.cuh", text: embedded("sta_sm90_shape.cuh", PackageResources.sta_sm90_shape_cuh)),
            .init(name: "sta_sm90_work.cuh", text: embedded("sta_sm90_work.cuh", PackageResources.sta_sm90_work_cuh)),
            .init(name: "sta_sm90_consumer.cuh", text: embedded("sta_sm90_consumer.cuh", PackageResources.sta_sm90_consumer_cuh)),
            .init(name: "sta_sm90_mainloop.cuh", text: embedded("sta_sm90_mainloop.cuh", PackageResources.sta_sm90_mainloop_cuh)),
            .init(name: "sta_sm90_epilogue.cuh", text: embedded("sta_sm90_epilogue.cuh", PackageResources.sta_sm90_epilogue_cuh)),
        ]
    }
    /// The Hopper backward kernel's pieces: the PTX wrappers it shares with the forward, shape, work
    /// decoding, consumer products and recomputation, the main loops, the epilogue.
    static var sm90Backward: [Self] {
        [
            .init(name: "sta_sm90_ptx.cuh", text: embedded("sta_sm90_ptx.cuh", PackageResources.sta_sm90_ptx_cuh)),
            .init(name: "sta_sm90_bwd_shape.cuh", text: embedded("sta_sm90_bwd_shape.cuh", PackageResources.sta_sm90_bwd_shape_cuh)),
            .init(name: "sta_sm90_bwd_work.cuh", text: embedded("sta_sm90_bwd_work.cuh", PackageResources.sta_sm90_bwd_work_cuh)),
            .init(name: "sta_sm90_bwd_consumer.cuh", text: embedded("sta_sm90_bwd_consumer.cuh", PackageResources.sta_sm90_bwd_consumer_cuh)),
            .init(name: "sta_sm90_bwd_mainloop.cuh", text: embedded("sta_sm90_bwd_mainloop.cuh", PackageResources.sta_sm90_bwd_mainloop_cuh)),
            .init(name: "sta_sm90_bwd_epilogue.cuh", text: embedded("sta_sm90_bwd_epilogue.cuh", PackageResources.sta_sm90_bwd_epilogue_cuh)),
        ]
    }
}

/// The text of the embedded kernel file `name` (its UTF-8 `bytes`), or the file of that name in
/// `$STA_KERNEL_SOURCES` when there is one (`KernelDevelopment`).
func embedded(_ name: String, _ bytes: [UInt8]) -> String {
    KernelDevelopment.source(named: name) ?? String(decoding: bytes, as: UTF8.self)
}
