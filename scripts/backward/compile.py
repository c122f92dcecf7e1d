"""Compiles Kernels/sta_backward_sm80.cu with NVRTC (ctypes) for the harness's cases; prints ptxas usage.

Usage: python3 compile.py OUTDIR [ARCH]   (STA_NVRTC_PATH names libnvrtc.so.13)
Writes OUTDIR/<case>.cubin and OUTDIR/cases.json (the case parameters, read by harness.py).
"""
import ctypes, json, os, sys

from cases import CASES

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "../../Sources/STACUDAKernels/Kernels/sta_backward_sm80.cu")


def nvrtc():
    lib = ctypes.CDLL(os.environ.get("STA_NVRTC_PATH", "libnvrtc.so.13"))
    return lib


def compile_source(lib, source, options):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"sta_backward_sm80.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc != 0:
        raise RuntimeError(log.value.decode())
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, cubin)
    return cubin.raw, log.value.decode()


def options(case, arch):
    def pad(x):
        return [1] * (3 - len(x)) + list(x)
    canvas, tile = pad(case["canvas"]), pad(case["tile"])
    grid = [(c + t - 1) // t for c, t in zip(canvas, tile)]
    out = ["--std=c++17", f"--gpu-architecture={arch}", f"-DSTA_HEAD_DIM={case['head_dim']}",
           "-DSTA_BF16=1" if case["dtype"] == "bf16" else "-DSTA_FP16=1"]
    for i, n in enumerate("THW"):
        out += [f"-DSTA_CANVAS_{n}={canvas[i]}", f"-DSTA_TILE_{n}={tile[i]}", f"-DSTA_GRID_{n}={grid[i]}"]
    out += [f"-DSTA_TEXT_COUNT={case['text_count']}", f"-DSTA_TEXT_VALID={case['text_valid']}",
            "--ptxas-options=-v"]
    if "dkv_chunk" in case:
        out.append(f"-DSTA_DKV_CHUNK={case['dkv_chunk']}")
    return out


def main():
    outdir = sys.argv[1]
    arch = sys.argv[2] if len(sys.argv) > 2 else "sm_90a"
    os.makedirs(outdir, exist_ok=True)
    lib = nvrtc()
    source = open(SOURCE).read()
    for case in CASES:
        cubin, log = compile_source(lib, source, options(case, arch))
        with open(os.path.join(outdir, case["name"] + ".cubin"), "wb") as f:
            f.write(cubin)
        print(case["name"])
        for line in log.splitlines():
            if "registers" in line or "spill" in line or "stack" in line or "Compiling" in line:
                print("  ", line.strip())
    json.dump(CASES, open(os.path.join(outdir, "cases.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
