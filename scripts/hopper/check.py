#!/usr/bin/env python3
"""Device check and timing of sta_forward_sm90 (run on the GPU machine; needs numpy, torch, CUDA).

Uses the libraries built from harness.cu (one per set of compile-time constants, see build.sh):
  1. probes: one warpgroup's S = Q·Kᵀ and O = P·V through the kernel's TMA maps, descriptors and wgmma
     wrappers, against float64;
  2. whole-kernel checks on small problems (bf16/fp16, D 64/128, text padding, holes, odd tiles, 2D)
     against a float64 reference under the explicit STA mask, with poisoned outputs;
  3. the hunyuan (and wan) problems: a sampled check, then timing with CUDA events (median of 10 after
     3 warm-ups) and effective TFLOP/s.
Prints a table at the end and writes results.json to $OUT (or the current directory).

  python3 check.py [--lib-dir DIR] [--only NAME,...] [--skip-timing] [--load-test]
"""
import argparse, ctypes, json, math, os, sys, time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name: canvas, tile, text count, text valid, heads, batch, head dim, dtype, windows (per head)
CONFIGS = {
    "small_bf16_128": ((12, 16, 24), (6, 8, 8), 256, 200, 4, 2, 128, "bf16", [(1, 1, 1), (1, 1, 3), (3, 3, 3), (1, 3, 1)]),
    "small_fp16_128": ((12, 16, 24), (6, 8, 8), 256, 200, 4, 2, 128, "fp16", [(1, 1, 1), (1, 1, 3), (3, 3, 3), (1, 3, 1)]),
    "small_bf16_64": ((12, 16, 24), (6, 8, 8), 256, 200, 4, 2, 64, "bf16", [(1, 1, 1), (1, 1, 3), (3, 3, 3), (1, 3, 1)]),
    "small_fp16_64": ((12, 16, 24), (6, 8, 8), 256, 200, 4, 2, 64, "fp16", [(1, 1, 1), (1, 1, 3), (3, 3, 3), (1, 3, 1)]),
    "padded_bf16_128": ((10, 13, 20), (6, 8, 8), 77, 77, 3, 1, 128, "bf16", [(1, 1, 1), (1, 1, 3), (1, 3, 1)]),
    "padded_fp16_64": ((10, 13, 20), (6, 8, 8), 77, 77, 3, 1, 64, "fp16", [(1, 1, 1), (1, 1, 3), (1, 3, 1)]),
    "hpad_bf16_128": ((12, 13, 24), (6, 8, 8), 64, 50, 2, 2, 128, "bf16", [(1, 3, 3), (3, 3, 3)]),
    "hpad_fp16_64": ((9, 13, 24), (6, 8, 8), 64, 64, 2, 1, 64, "fp16", [(1, 1, 3), (1, 3, 1)]),
    "odd_bf16_128": ((12, 18, 18), (6, 6, 6), 50, 40, 2, 1, 128, "bf16", [(1, 3, 3), (1, 1, 1)]),
    "image_bf16_128": ((1, 40, 56), (1, 8, 16), 0, 0, 2, 1, 128, "bf16", [(1, 3, 3), (1, 1, 1)]),
    "hunyuan_bf16_128": ((30, 48, 80), (6, 8, 8), 256, 256, 24, 1, 128, "bf16", [(3, 3, 3)] * 24),
    "wan_bf16_128": ((21, 45, 80), (6, 8, 8), 0, 0, 40, 1, 128, "bf16", [(3, 3, 3)] * 40),
}
LARGE = {"hunyuan_bf16_128", "wan_bf16_128"}
HUNYUAN_MIXED = [(5, 3, 3)] * 10 + [(1, 6, 10)] * 8 + [(3, 3, 5)] * 3 + [(5, 1, 10)] * 2 + [(5, 6, 1)]
TIMED = {
    "hunyuan_bf16_128": [("3x3x3", [(3, 3, 3)] * 24), ("5x5x5", [(5, 5, 5)] * 24), ("mixed", HUNYUAN_MIXED)],
    "wan_bf16_128": [("3x3x3", [(3, 3, 3)] * 40), ("3x5x5", [(3, 5, 5)] * 40)],
}
PEERS = {("hunyuan_bf16_128", "3x3x3"): "TK 36.9 / Flex 37.5 ms", ("hunyuan_bf16_128", "5x5x5"): "TK 129.5 / Flex 157.4 ms",
         ("hunyuan_bf16_128", "mixed"): "Flex 66.3 ms", ("wan_bf16_128", "3x3x3"): "Flex 57-65 ms",
         ("wan_bf16_128", "3x5x5"): "Flex 174.6 ms"}


# ---- Geometry (mirrors STAGeometry.AttentionPlan) ----------------------------------------------------

class Problem:
    def __init__(self, canvas, tile, text, valid, heads, batch, dim, dtype, windows):
        self.canvas, self.tile, self.text, self.valid = canvas, tile, text, valid
        self.heads, self.batch, self.dim, self.dtype = heads, batch, dim, dtype
        self.grid = tuple(math.ceil(c / t) for c, t in zip(canvas, tile))
        self.tv = tile[0] * tile[1] * tile[2]
        self.ntiles = self.grid[0] * self.grid[1] * self.grid[2]
        self.V = self.ntiles * self.tv
        self.S = self.V + text
        idx = np.arange(self.V)
        ti, off = idx // self.tv, idx % self.tv
        tc = (ti // (self.grid[1] * self.grid[2]), (ti // self.grid[2]) % self.grid[1], ti % self.grid[2])
        oc = (off // (tile[1] * tile[2]), (off // tile[2]) % tile[1], off % tile[2])
        real = np.ones(self.V, dtype=bool)
        for a in range(3):
            real &= tc[a] * tile[a] + oc[a] < canvas[a]
        self.real = np.concatenate([real, np.arange(text) < valid])  # real keys (video non-hole, valid text)
        self.set_windows(windows)

    def set_windows(self, windows):
        resolved = []
        for w in windows:
            r = []
            for a in range(3):
                if w[a] >= self.grid[a]:
                    r.append(self.grid[a])
                else:
                    assert w[a] % 2 == 1, "even window"
                    r.append(w[a])
            resolved.append(tuple(r))
        distinct = []
        self.window_of_head = []
        for w in resolved:
            if w not in distinct:
                distinct.append(w)
            self.window_of_head.append(distinct.index(w))
        starts, tiles = [0], []
        self.allowed = np.zeros((len(distinct), self.ntiles, self.ntiles), dtype=bool)
        for wi, w in enumerate(distinct):
            for q in range(self.ntiles):
                qc = (q // (self.grid[1] * self.grid[2]), (q // self.grid[2]) % self.grid[1], q % self.grid[2])
                ranges = []
                for a in range(3):
                    n = self.grid[a]
                    if w[a] >= n:
                        ranges.append(range(0, n))
                    else:
                        r = w[a] // 2
                        c = min(max(qc[a], r), n - 1 - r)
                        ranges.append(range(c - r, c + r + 1))
                for x in ranges[0]:
                    for y in ranges[1]:
                        for z in ranges[2]:
                            k = (x * self.grid[1] + y) * self.grid[2] + z
                            tiles.append(k)
                            self.allowed[wi, q, k] = True
                starts.append(len(tiles))
        self.windows = resolved
        self.key_tile_start = np.array(starts, dtype=np.int32)
        self.key_tiles = np.array(tiles, dtype=np.int32)
        self.window_of_head = np.array(self.window_of_head, dtype=np.int32)

    def row_mask(self, head, rows):
        """Bool [len(rows), S]: which keys each query row attends."""
        rows = np.asarray(rows)
        m = np.zeros((len(rows), self.S), dtype=bool)
        w = self.window_of_head[head]
        for i, r in enumerate(rows):
            if not self.real[r]:
                continue
            if r < self.V:
                tile_ok = self.allowed[w, r // self.tv]
                m[i, :self.V] = np.repeat(tile_ok, self.tv) & self.real[:self.V]
                m[i, self.V:] = self.real[self.V:]
            else:
                m[i] = self.real
        return m

    def effective_flops(self):
        real_in_tile = self.real[:self.V].reshape(self.ntiles, self.tv).sum(1)
        pairs = 0
        n = int(self.real[:self.V].sum())
        t = self.valid
        for h in range(self.heads):
            a = self.allowed[self.window_of_head[h]]
            video = int(real_in_tile @ a.astype(np.int64) @ real_in_tile)
            pairs += video + 2 * n * t + t * t
        return 4.0 * self.dim * self.batch * pairs


def to_bits(x, dtype):
    """float32 array -> (uint16 storage bits, float64 values they represent)."""
    if dtype == "fp16":
        h = x.astype(np.float16)
        return h.view(np.uint16), h.astype(np.float64)
    u = x.astype(np.float32).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded, (rounded.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def from_bits(bits, dtype):
    if dtype == "fp16":
        return bits.view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def reference(q, k, v, mask, scale):
    """q [R, D], k/v [S, D] float64, mask [R, S] -> out [R, D], lse [R] (−inf where nothing attended)."""
    s = (q @ k.T) * scale
    s = np.where(mask, s, -np.inf)
    mx = s.max(axis=1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    p = np.exp(s - mx)
    l = p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(l > 0, (p @ v) / l, 0.0)
        lse = np.where(l[:, 0] > 0, np.log(l[:, 0]) + mx[:, 0], -np.inf)
    return out, lse


# ---- GPU side ----------------------------------------------------------------------------------------

VARIANTS = ["", "_nopp", "_s3", "_ref", "_v2", "_n128", "_nopack"]  # library suffixes of large-problem variants (see NOTES.md), when present


def load_lib(lib_dir, name):
    lib = ctypes.CDLL(os.path.join(lib_dir, f"libsta_{name}.so"))
    lib.sta_launch.restype = ctypes.c_int
    lib.sta_launch.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_void_p]
    lib.sta_grid.restype = ctypes.c_longlong
    lib.probe_qk.argtypes = [ctypes.c_void_p] * 4
    lib.probe_pv.argtypes = [ctypes.c_void_p] * 4
    return lib


class Runner:
    def __init__(self, torch, lib, prob):
        self.torch, self.lib, self.prob = torch, lib, prob
        self.tdtype = torch.bfloat16 if prob.dtype == "bf16" else torch.float16
        self.upload_plan()

    def upload_plan(self):
        t, p = self.torch, self.prob
        self.woh = t.from_numpy(p.window_of_head).cuda()
        self.kts = t.from_numpy(p.key_tile_start).cuda()
        self.kt = t.from_numpy(p.key_tiles).cuda()

    def launch(self, q, k, v, o, lse, scale):
        p = self.prob
        rc = self.lib.sta_launch(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), lse.data_ptr(),
                                 self.woh.data_ptr(), self.kts.data_ptr(), self.kt.data_ptr(), p.batch, p.heads,
                                 float(scale), self.torch.cuda.current_stream().cuda_stream)
        if rc != 0:
            raise RuntimeError(f"sta_launch returned {rc}")


def u16_tensor(torch, bits, tdtype):
    return torch.from_numpy(bits.view(np.int16)).cuda().view(tdtype)


def run_probes(torch, lib, dtype, dim, rng):
    out = {}
    qf = rng.standard_normal((128, dim)).astype(np.float32)
    kf = rng.standard_normal((128, dim)).astype(np.float32)
    qb, q64 = to_bits(qf, dtype)
    kb, k64 = to_bits(kf, dtype)
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float16
    qt, kt = u16_tensor(torch, qb, tdtype), u16_tensor(torch, kb, tdtype)
    s = torch.full((64, 128), float("nan"), dtype=torch.float32, device="cuda")
    rc = lib.probe_qk(qt.data_ptr(), kt.data_ptr(), s.data_ptr(), None)
    torch.cuda.synchronize()
    ref = q64[:64] @ k64.T
    got = s.cpu().numpy().astype(np.float64)
    out["probe_qk"] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref)) if rc == 0 else f"rc {rc}"
    if rc == 0 and not out["probe_qk"] < 1e-5:
        # Which layout went wrong: find, for a few outputs, the (row, col) of ref they match.
        pos = []
        for (r, c) in [(0, 0), (0, 1), (0, 8), (1, 0), (8, 0), (16, 0), (0, 64)]:
            hit = np.argwhere(np.abs(ref - got[r, c]) < 1e-3 * (1 + abs(got[r, c])))
            pos.append(((r, c), hit[:3].tolist()))
        out["probe_qk_where"] = str(pos)
    pf = rng.random((64, 128)).astype(np.float32)
    vf = rng.standard_normal((128, dim)).astype(np.float32)
    pb, p64 = to_bits(pf, dtype)
    vb, v64 = to_bits(vf, dtype)
    pt, vt = torch.from_numpy(pb.view(np.int16)).cuda(), u16_tensor(torch, vb, tdtype)
    o = torch.full((64, dim), float("nan"), dtype=torch.float32, device="cuda")
    rc = lib.probe_pv(pt.data_ptr(), vt.data_ptr(), o.data_ptr(), None)
    torch.cuda.synchronize()
    ref = p64 @ v64
    got = o.cpu().numpy().astype(np.float64)
    out["probe_pv"] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref)) if rc == 0 else f"rc {rc}"
    if rc == 0 and not out["probe_pv"] < 1e-5:
        pos = []
        for (r, c) in [(0, 0), (0, 1), (0, 8), (1, 0), (8, 0), (0, 64)]:
            hit = np.argwhere(np.abs(ref - got[r, c]) < 1e-3 * (1 + abs(got[r, c])))
            pos.append(((r, c), hit[:3].tolist()))
        out["probe_pv_where"] = str(pos)
    return out


def check_small(torch, lib, name, rng):
    cfg = CONFIGS[name]
    prob = Problem(*cfg)
    B, H, S, D = prob.batch, prob.heads, prob.S, prob.dim
    scale = 1.0 / math.sqrt(D)
    qb, q64 = to_bits(rng.standard_normal((B, H, S, D)).astype(np.float32), prob.dtype)
    kb, k64 = to_bits(rng.standard_normal((B, H, S, D)).astype(np.float32), prob.dtype)
    vb, v64 = to_bits(rng.standard_normal((B, H, S, D)).astype(np.float32), prob.dtype)
    run = Runner(torch, lib, prob)
    q, k, v = (u16_tensor(torch, x, run.tdtype) for x in (qb, kb, vb))
    o = torch.full((B, H, S, D), float("nan"), dtype=run.tdtype, device="cuda")
    lse = torch.full((B, H, S), float("nan"), dtype=torch.float32, device="cuda")
    run.launch(q, k, v, o, lse, scale)
    torch.cuda.synchronize()
    o_np = o.float().cpu().numpy().astype(np.float64)
    lse_np = lse.cpu().numpy().astype(np.float64)
    num = den = 0.0
    lse_err = 0.0
    bad_invalid = 0
    valid_rows = prob.real.copy()
    rows = np.arange(S)
    for b in range(B):
        for h in range(H):
            mask = prob.row_mask(h, rows)
            ref, ref_lse = reference(q64[b, h], k64[b, h], v64[b, h], mask, scale)
            attends = mask.any(axis=1)
            got = o_np[b, h]
            num += float(((got[attends] - ref[attends]) ** 2).sum())
            den += float((ref[attends] ** 2).sum())
            lse_err = max(lse_err, float(np.abs(lse_np[b, h][attends] - ref_lse[attends]).max()))
            none = ~attends
            bad_invalid += int((got[none] != 0).any(axis=1).sum() + (lse_np[b, h][none] != -np.inf).sum())
    nan = int(np.isnan(o_np).sum() + np.isnan(lse_np).sum())
    rel = math.sqrt(num / den)
    tol = 1e-2 if prob.dtype == "bf16" else 3e-3
    ok = rel < tol and lse_err < 1e-3 and nan == 0 and bad_invalid == 0
    return {"rel_err": rel, "lse_abs_err": lse_err, "nan": nan, "bad_invalid_rows": bad_invalid, "ok": ok}


def large(torch, lib, name, rng, timing):
    cfg = CONFIGS[name]
    prob = Problem(*cfg)
    B, H, S, D = prob.batch, prob.heads, prob.S, prob.dim
    scale = 1.0 / math.sqrt(D)
    run = Runner(torch, lib, prob)
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn((B, H, S, D), generator=g, device="cuda", dtype=run.tdtype) for _ in range(3))
    o = torch.full((B, H, S, D), float("nan"), dtype=run.tdtype, device="cuda")
    lse = torch.full((B, H, S), float("nan"), dtype=torch.float32, device="cuda")
    results = {}
    for label, windows in TIMED[name]:
        prob.set_windows(windows)
        run.upload_plan()
        o.fill_(float("nan"))
        lse.fill_(float("nan"))
        run.launch(q, k, v, o, lse, scale)
        torch.cuda.synchronize()
        entry = {}
        # Sampled check: a few heads, random video rows and some text rows.
        num = den = 0.0
        lse_err = 0.0
        for h in rng.choice(H, size=min(3, H), replace=False):
            rows = np.sort(np.concatenate([rng.choice(prob.V, 192, replace=False),
                                           prob.V + rng.choice(max(prob.text, 1), min(prob.text, 32), replace=False)
                                           if prob.text else np.array([], dtype=np.int64)])).astype(np.int64)
            mask = prob.row_mask(int(h), rows)
            qh = q[0, h][torch.from_numpy(rows).cuda()].double().cpu().numpy()
            kh = k[0, h].double().cpu().numpy()
            vh = v[0, h].double().cpu().numpy()
            ref, ref_lse = reference(qh, kh, vh, mask, scale)
            got = o[0, h][torch.from_numpy(rows).cuda()].double().cpu().numpy()
            got_lse = lse[0, h][torch.from_numpy(rows).cuda()].double().cpu().numpy()
            att = mask.any(axis=1)
            num += float(((got[att] - ref[att]) ** 2).sum())
            den += float((ref[att] ** 2).sum())
            lse_err = max(lse_err, float(np.abs(got_lse[att] - ref_lse[att]).max()))
            if (~att).any():
                entry["invalid_rows_ok"] = bool((got[~att] == 0).all() and (got_lse[~att] == -np.inf).all())
        entry["nan_total"] = int(torch.isnan(o).sum().item() + torch.isnan(lse).sum().item())
        entry["rel_err_sampled"] = math.sqrt(num / den)
        entry["lse_abs_err_sampled"] = lse_err
        if timing:
            for _ in range(3):
                run.launch(q, k, v, o, lse, scale)
            torch.cuda.synchronize()
            times = []
            for _ in range(10):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                run.launch(q, k, v, o, lse, scale)
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            times.sort()
            med = times[len(times) // 2]
            flops = prob.effective_flops()
            entry.update({"median_ms": med, "min_ms": times[0], "max_ms": times[-1], "effective_tflops": flops / med / 1e9,
                          "effective_flops": flops, "peer": PEERS.get((name, label), "")})
        results[label] = entry
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", default=os.path.join(HERE, "lib"))
    ap.add_argument("--only", default="")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--load-test", action="store_true")
    ap.add_argument("--json", default="results.json", help="file name of the results under $OUT")
    a = ap.parse_args()
    names = [n for n in CONFIGS if not a.only or n in a.only.split(",")]
    if a.load_test:
        try:
            for n in names:
                load_lib(a.lib_dir, n)
        except OSError as e:
            print("load failed:", e)
            sys.exit(3)
        print("libraries load")
        return
    import torch
    print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
    rng = np.random.default_rng(12345)
    results = {}
    table = []
    runs = []
    for n in names:
        runs.append(n)
        if n in LARGE:
            runs += [n + v for v in VARIANTS[1:] if os.path.exists(os.path.join(a.lib_dir, f"libsta_{n}{v}.so"))]
    for n in runs:
        lib = load_lib(a.lib_dir, n)
        base = next(c for c in CONFIGS if n.startswith(c))
        t0 = time.time()
        try:
            if base in LARGE:
                r = large(torch, lib, base, rng, not a.skip_timing)
            else:
                cfg = CONFIGS[n]
                r = run_probes(torch, lib, cfg[7], cfg[6], rng)
                r.update(check_small(torch, lib, n, rng))
        except Exception as e:  # keep going: one failure must not hide the others
            r = {"error": repr(e)}
        r["seconds"] = round(time.time() - t0, 2)
        results[n] = r
        print(n, json.dumps(r), flush=True)
    out_dir = os.environ.get("OUT", ".")
    with open(os.path.join(out_dir, a.json), "w") as f:
        json.dump(results, f, indent=1)
    print("\n== summary ==")
    for n, r in results.items():
        if "error" in r:
            print(f"{n:18s} ERROR {r['error'][:200]}")
        elif any(n.startswith(c) for c in LARGE):
            for label, e in r.items():
                if not isinstance(e, dict):
                    continue
                print(f"{n:23s} {label:6s} rel {e['rel_err_sampled']:.2e} lse {e['lse_abs_err_sampled']:.1e} nan {e['nan_total']}"
                      + (f" | {e['median_ms']:.2f} ms ({e['min_ms']:.2f}-{e['max_ms']:.2f}) {e['effective_tflops']:.0f} TFLOP/s  [{e['peer']}]" if 'median_ms' in e else ""))
        else:
            print(f"{n:18s} {'OK ' if r.get('ok') else 'BAD'} qk {r.get('probe_qk')} pv {r.get('probe_pv')} rel {r.get('rel_err'):.2e} "
                  f"lse {r.get('lse_abs_err'):.1e} nan {r.get('nan')} badinv {r.get('bad_invalid_rows')}")


if __name__ == "__main__":
    main()
