#!/usr/bin/env python3
"""Compiles sta_forward_sm90.cu with NVRTC (no GPU needed) and prints ptxas's resource report.

  STA_NVRTC_PATH=/path/libnvrtc.so.13 python3 scripts/hopper/nvrtc_check.py [hunyuan|wan|image|small] [bf16|fp16] [128|64] [-DEXTRA ...]
Writes the CUBIN to /tmp/sta_sm90_<config>.cubin and the PTX to /tmp/sta_sm90_<config>.ptx.
"""
import ctypes, os, sys, math

CONFIGS = {
    # canvas, tile, text count, text valid
    "hunyuan": ((30, 48, 80), (6, 8, 8), 256, 256),
    "wan": ((21, 45, 80), (6, 8, 8), 0, 0),
    "image": ((1, 128, 128), (1, 8, 16), 0, 0),
    "small": ((18, 24, 32), (6, 8, 8), 256, 200),
    "padded": ((10, 13, 20), (6, 8, 8), 77, 77),
}


def defines(config, dtype, dim, extra=()):
    canvas, tile, text, valid = CONFIGS[config]
    grid = [math.ceil(c / t) for c, t in zip(canvas, tile)]
    d = [f"-DSTA_HEAD_DIM={dim}", "-DSTA_BF16=1" if dtype == "bf16" else "-DSTA_FP16=1"]
    for axis, c, t, g in zip("THW", canvas, tile, grid):
        d += [f"-DSTA_CANVAS_{axis}={c}", f"-DSTA_TILE_{axis}={t}", f"-DSTA_GRID_{axis}={g}"]
    d += [f"-DSTA_TEXT_COUNT={text}", f"-DSTA_TEXT_VALID={valid}"]
    return d + list(extra)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-D")]
    extra = [a for a in sys.argv[1:] if a.startswith("-D")]
    config = args[0] if args else "hunyuan"
    dtype = args[1] if len(args) > 1 else "bf16"
    dim = int(args[2]) if len(args) > 2 else 128
    path = os.environ.get("STA_NVRTC_PATH", "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13")
    builtins = os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.13.0")
    if os.path.exists(builtins):
        ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    here = os.path.dirname(os.path.abspath(__file__))
    src_path = os.path.join(here, "../../Sources/STACUDAKernels/Kernels/sta_forward_sm90.cu")
    src = open(src_path, "rb").read()
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"sta_forward_sm90.cu", 0, None, None) == 0
    opts = ["-arch=sm_90a", "--ptxas-options=-v", "-std=c++17"] + defines(config, dtype, dim, extra)
    copts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    rc = lib.nvrtcCompileProgram(prog, len(opts), copts)
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    print(log.value.decode())
    if rc != 0:
        print("compile failed", rc)
        sys.exit(1)
    tag = f"{config}_{dtype}_{dim}"
    for kind in ("CUBIN", "PTX"):
        size = ctypes.c_size_t()
        getattr(lib, f"nvrtcGet{kind}Size")(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        getattr(lib, f"nvrtcGet{kind}")(prog, buf)
        with open(f"/tmp/sta_sm90_{tag}.{kind.lower()}", "wb") as f:
            f.write(buf.raw)
    print("ok", tag)


if __name__ == "__main__":
    main()
