# usage: ptx2sass.py FILE.ptx... : writes FILE.sass next to each (nvJitLink to sm_90a cubin, then cuobjdump)
import ctypes, sys, os, subprocess
lib = ctypes.CDLL("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/nvidia/cu13/lib/libnvJitLink.so.13")
for path in sys.argv[1:]:
    h = ctypes.c_void_p()
    arch = b"-arch=sm_90a" if "sm_90a" in path else b"-arch=sm_80"
    opts = (ctypes.c_char_p * 1)(arch)
    assert lib.__nvJitLinkCreate_13_0(ctypes.byref(h), 1, opts) == 0
    data = open(path, "rb").read() + b"\0"
    r = lib.nvJitLinkAddData(h, 2, data, len(data), path.encode())  # 2 = NVJITLINK_INPUT_PTX
    assert r == 0, r
    r = lib.nvJitLinkComplete(h); assert r == 0, r
    n = ctypes.c_size_t(); lib.nvJitLinkGetLinkedCubinSize(h, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value); lib.nvJitLinkGetLinkedCubin(h, buf)
    cub = path[:-4] + ".cubin"; open(cub, "wb").write(buf.raw)
    out = subprocess.run(["cuobjdump", "-sass", cub], capture_output=True, text=True).stdout
    lines = [l.split("*/", 1)[1].strip() for l in out.splitlines() if l.strip().startswith("/*") and "*/" in l and ";" in l]
    open(path[:-4] + ".sass", "w").write("\n".join(lines))
