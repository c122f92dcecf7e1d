#!/usr/bin/env python3
"""Compile a CUDA C++ file to CUBIN with NVRTC and report ptxas resource usage.

Usage:
  scripts/nvrtc_check.py FILE.cu --arch sm_80 [-D NAME=VALUE ...] [--header NAME=PATH ...]
                         [--option OPT ...] [--max-registers N] [--ptx-out PATH]

Prints the NVRTC log lines (ptxas -v output: registers, shared memory, stack frame, spills).
Exits 1 on a compile error, on any spill store/load, on a non-zero stack frame, or when a kernel uses more
registers than --max-registers (default 255). The library is looked up in $NVRTC_LIBRARY, then in the
pip wheel nvidia-cuda-nvrtc (cu13), then by soname.
"""
import argparse
import ctypes
import glob
import os
import re
import sys


def load_nvrtc():
    candidates = []
    if os.environ.get("NVRTC_LIBRARY"):
        candidates.append(os.environ["NVRTC_LIBRARY"])
    for site in sys.path:
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cu13", "lib", "libnvrtc.so.*")))
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*")))
    candidates += ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
    for path in candidates:
        try:
            # NVRTC dlopens its builtins library by soname; load it first from the same folder so that no
            # LD_LIBRARY_PATH is needed.
            for builtins in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*"))):
                if ".alt." not in builtins:
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path), path
        except OSError:
            continue
    sys.exit("nvrtc_check: libnvrtc not found (set NVRTC_LIBRARY)")


def check(lib, result, what):
    if result != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(result).decode()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("--arch", default="sm_80", help="sm_80, sm_90a, ... (a real architecture: CUBIN)")
    parser.add_argument("-D", dest="defines", action="append", default=[], help="NAME=VALUE macro")
    parser.add_argument("--header", action="append", default=[], help="NAME=PATH: an includable header")
    parser.add_argument("--option", action="append", default=[], help="extra NVRTC option")
    parser.add_argument("--max-registers", type=int, default=255)
    parser.add_argument("--ptx-out", help="also compile to PTX (compute_XX) and write it here")
    args = parser.parse_args()

    lib, path = load_nvrtc()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"nvrtc {major.value}.{minor.value} ({path})")

    with open(args.source, "rb") as f:
        source = f.read()
    header_names, header_sources = [], []
    for item in args.header:
        name, _, header_path = item.partition("=")
        with open(header_path, "rb") as f:
            header_sources.append(f.read())
        header_names.append(name.encode())

    def compile_with(arch_option, want_cubin):
        program = ctypes.c_void_p()
        count = len(header_names)
        check(lib, lib.nvrtcCreateProgram(
            ctypes.byref(program), source, os.path.basename(args.source).encode(), count,
            (ctypes.c_char_p * count)(*header_sources), (ctypes.c_char_p * count)(*header_names)), "create")
        options = [arch_option, "--std=c++17", "--ptxas-options=-v"] + [f"-D{d}" for d in args.defines] + args.option
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        output = b""
        if status == 0:
            if want_cubin:
                lib.nvrtcGetCUBINSize(program, ctypes.byref(size))
                buffer = ctypes.create_string_buffer(size.value)
                check(lib, lib.nvrtcGetCUBIN(program, buffer), "cubin")
            else:
                lib.nvrtcGetPTXSize(program, ctypes.byref(size))
                buffer = ctypes.create_string_buffer(size.value)
                check(lib, lib.nvrtcGetPTX(program, buffer), "ptx")
            output = buffer.raw
        lib.nvrtcDestroyProgram(ctypes.byref(program))
        return status, log.value.decode(errors="replace"), output

    status, log, cubin = compile_with(f"--gpu-architecture={args.arch}", True)
    print(f"options: --gpu-architecture={args.arch} " + " ".join(f"-D{d}" for d in args.defines + args.option))
    failures = []
    for line in log.splitlines():
        if line.strip():
            print("  " + line)
    if status != 0:
        failures.append("compile error")
    else:
        print(f"cubin: {len(cubin)} bytes")
        for match in re.finditer(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log):
            frame, stores, loads = map(int, match.groups())
            if stores or loads:
                failures.append(f"spills ({stores} bytes stores, {loads} bytes loads)")
            if frame:
                failures.append(f"stack frame of {frame} bytes")
        for match in re.finditer(r"Used (\d+) registers", log):
            if int(match.group(1)) > args.max_registers:
                failures.append(f"{match.group(1)} registers > {args.max_registers}")
        if "Used" not in log:
            failures.append("no ptxas resource report in the log")
    if args.ptx_out and status == 0:
        compute = args.arch.replace("sm_", "compute_")
        _, _, ptx = compile_with(f"--gpu-architecture={compute}", False)
        with open(args.ptx_out, "wb") as f:
            f.write(ptx.rstrip(b"\0"))
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
