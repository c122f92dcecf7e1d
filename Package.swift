// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SlidingTileAttention",
    products: [
        .library(name: "SlidingTileAttention", targets: ["SlidingTileAttention", "STAWindowSearch"]),
        .executable(name: "sta", targets: ["STACommand"]),
        // The C interface (include/sta.h) as libsta_c.so, for Python (ctypes) and other languages.
        .library(name: "sta_c", type: .dynamic, targets: ["STACInterface", "STACLibraryLinkage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Documentation only (`swift package generate-documentation`); adds no code to any product.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Canvases, tiles, windows, the tile-contiguous order, plans and mask analysis. No dependencies.
        .target(name: "STAGeometry"),
        // Storage dtypes (bf16, fp16, fp32, ints), host tensors, .npy and .safetensors files.
        .target(name: "STATensors"),
        // The float64 reference attention every backend is checked against.
        .target(name: "STAReference", dependencies: ["STAGeometry", "STATensors"]),
        // The vector micro-kernels of the CPU backend, in C: each is built for the target's baseline and,
        // on x86-64, for AVX2/FMA/F16C through per-function target attributes, chosen at run time from
        // cpuid. No compiler flags, so the package can be a versioned dependency.
        .target(name: "STACPUKernelsC"),
        // The multicore SIMD CPU backend.
        .target(name: "STACPUKernels", dependencies: ["STACPUKernelsC", "STAGeometry", "STATensors"]),
        // The CUDA driver and NVRTC, loaded with dlopen at run time. The only layer that touches the C API.
        .target(name: "CUDADriver"),
        // CUDA C++ kernel sources (compiled by NVRTC at run time) and their Swift launchers.
        .target(
            name: "STACUDAKernels",
            dependencies: ["CUDADriver", "STAGeometry", "STATensors"],
            resources: [.embedInCode("Kernels")]
        ),
        // Head-specialised window search over captured activations (training-free, spec §6).
        // The CPU path is its own; the GPU path (CUDAWindowMeasurer) runs attention through the façade's
        // CUDAEngine and its error sums with STACUDAKernels.
        .target(
            name: "STAWindowSearch",
            dependencies: ["STAGeometry", "STATensors", "STACPUKernels", "SlidingTileAttention", "STACUDAKernels", "CUDADriver"]
        ),
        // The façade: one attention call, a device to run it on. Re-exports STAGeometry and STATensors.
        .target(
            name: "SlidingTileAttention",
            dependencies: ["STAGeometry", "STATensors", "STAReference", "STACPUKernels", "STACUDAKernels"]
        ),
        // Development tooling over the façade (in no library product): verification against the float64
        // reference, GPU benchmarks, the demo problem, benchmark suites, the kernel catalogue, random
        // inputs and the shape syntax of the command line.
        .target(
            name: "STATooling",
            dependencies: [
                "SlidingTileAttention", "STAGeometry", "STATensors", "STAReference", "STACUDAKernels", "CUDADriver",
            ]
        ),
        // The C ABI: @_cdecl functions over plans and permutations, and argument marshalling over the
        // façade's engines for both backends; header in include/.
        .target(
            name: "STACInterface",
            dependencies: ["SlidingTileAttention"],
            exclude: ["include"]
        ),
        // Link settings of libsta_c.so only (a target, not a product setting, is all SwiftPM offers; tests
        // link STACInterface without it). SwiftPM's --static-swift-stdlib links the Swift runtime statically
        // into executables only; this makes the release libsta_c.so self-contained too, so Python loads it
        // on machines without a Swift toolchain (static-stdlib-args.lnk keeps the runtime's symbols hidden).
        .target(
            name: "STACLibraryLinkage",
            linkerSettings: [.unsafeFlags(["-static-stdlib"], .when(platforms: [.linux], configuration: .release))]
        ),
        // The `sta` command-line tool.
        .executableTarget(
            name: "STACommand",
            dependencies: [
                "SlidingTileAttention", "STATooling", "STAWindowSearch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "STAGeometryTests", dependencies: ["STAGeometry"]),
        .testTarget(name: "STATensorsTests", dependencies: ["STATensors"]),
        .testTarget(name: "STAReferenceTests", dependencies: ["STAReference"]),
        .testTarget(name: "STACPUKernelsTests", dependencies: ["STACPUKernels", "STAReference"]),
        .testTarget(name: "CUDADriverTests", dependencies: ["CUDADriver"]),
        .testTarget(name: "STACUDAKernelsTests", dependencies: ["STACUDAKernels", "STAReference"]),
        .testTarget(name: "STAWindowSearchTests", dependencies: ["STAWindowSearch", "STACPUKernels", "STACUDAKernels"]),
        .testTarget(name: "SlidingTileAttentionTests", dependencies: ["SlidingTileAttention"]),
        .testTarget(name: "STAToolingTests", dependencies: ["STATooling", "SlidingTileAttention", "STAReference"]),
        .testTarget(name: "STACommandTests", dependencies: ["STACommand"]),
        .testTarget(name: "STACInterfaceTests", dependencies: ["STACInterface", "SlidingTileAttention", "STACPUKernels", "STAReference", "CUDADriver"]),
    ],
    swiftLanguageModes: [.v6]
)
