// CUDADriver — the CUDA driver API and NVRTC, loaded with dlopen at run time.
//
// Layering (bottom to top):
//
// 1. `DynamicLibrary` opens a shared library and resolves symbols. Nothing is linked at build time,
//    so the package builds and its tests run on machines without CUDA.
// 2. `DriverAPI` and `NVRTCAPI` are the only types that touch the C API: tables of `@convention(c)`
//    function pointers whose types are declared here by hand (no C headers), plus `check`, which turns
//    every non-zero result code into a `CUDAError` carrying the call name and the error's name and text.
//    Both are internal.
// 3. The public types wrap those tables: `CUDAContext` (one device's primary context), `DeviceBuffer`,
//    `CUDAStream`, `CUDAEvent`, `CUDAModule`, `CUDAFunction`, `KernelArguments`, `TensorMap`,
//    `NVRTCCompiler`, `CompiledKernel` and `KernelCache`. Objects that own a driver resource keep the
//    context that created it alive and release the resource in `deinit`.
//
// Every public call makes its context current on the calling thread first (a thread-local store in the
// driver, tens of nanoseconds), so the types work from any thread or task.
