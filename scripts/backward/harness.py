"""Device harness for the STA backward kernels: loads cubins compiled by compile.py (cupy RawModule),
checks dq, dk, dv against torch autograd in float64 under the explicit STA mask, and times the hunyuan shape.

Usage (on the GPU machine): python3 harness.py CUBIN_DIR
"""
import json, math, os, sys, time

import cupy as cp
import numpy as np
import torch

CUBINS = sys.argv[1]
CASES = json.load(open(os.path.join(CUBINS, "cases.json")))


def pad3(x):
    return [1] * (3 - len(x)) + list(x)


class Layout:
    def __init__(self, case):
        self.canvas, self.tile = pad3(case["canvas"]), pad3(case["tile"])
        self.grid = [(c + t - 1) // t for c, t in zip(self.canvas, self.tile)]
        self.tile_vol = math.prod(self.tile)
        self.num_tiles = math.prod(self.grid)
        self.V = self.num_tiles * self.tile_vol
        self.text_count, self.text_valid = case["text_count"], case["text_valid"]
        self.S = self.V + self.text_count
        # Realness of every position.
        real = np.zeros(self.S, dtype=bool)
        for t in range(self.num_tiles):
            tc = np.unravel_index(t, self.grid)
            for o in range(self.tile_vol):
                oc = np.unravel_index(o, self.tile)
                real[t * self.tile_vol + o] = all(tc[a] * self.tile[a] + oc[a] < self.canvas[a] for a in range(3))
        real[self.V:self.V + self.text_valid] = True
        self.real = real

    def key_tiles(self, window, qt):
        window = pad3(window)
        qc = np.unravel_index(qt, self.grid)
        out = []
        for kt in range(self.num_tiles):
            kc = np.unravel_index(kt, self.grid)
            ok = True
            for a in range(3):
                n, k = self.grid[a], window[a]
                if k >= n:
                    continue
                r = k // 2
                c = min(max(qc[a], r), n - 1 - r)
                ok &= abs(c - kc[a]) <= r
            if ok:
                out.append(kt)
        return out


def plan_tables(layout, windows):
    unique = []
    for w in windows:
        if w not in unique:
            unique.append(w)
    window_of_head = np.array([unique.index(w) for w in windows], dtype=np.int32)
    start, tiles = [0], []
    inv = [[[] for _ in range(layout.num_tiles)] for _ in unique]
    for wi, w in enumerate(unique):
        for qt in range(layout.num_tiles):
            kts = layout.key_tiles(w, qt)
            tiles += kts
            start.append(len(tiles))
            for kt in kts:
                inv[wi][kt].append(qt)
    istart, itiles = [0], []
    for wi in range(len(unique)):
        for kt in range(layout.num_tiles):
            itiles += inv[wi][kt]
            istart.append(len(itiles))
    a = lambda x: np.array(x if x else [0], dtype=np.int32)
    return window_of_head, a(start), a(tiles), a(istart), a(itiles), unique


def dense_mask(layout, windows, device):
    S, V, tv = layout.S, layout.V, layout.tile_vol
    masks = []
    real = torch.tensor(layout.real, device=device)
    for w in windows:
        m = torch.zeros(S, S, dtype=torch.bool, device=device)
        for qt in range(layout.num_tiles):
            for kt in layout.key_tiles(w, qt):
                m[qt * tv:(qt + 1) * tv, kt * tv:(kt + 1) * tv] = True
        m[:V, V:V + layout.text_valid] = True
        m[V:V + layout.text_valid, :] = True
        m &= real[:, None] & real[None, :]
        masks.append(m)
    return torch.stack(masks)  # [H, S, S]


def effective_flops(layout, windows, batch, head_dim):
    tv = layout.tile_vol
    tile_real = layout.real[:layout.V].reshape(layout.num_tiles, tv).sum(1)
    real_video = int(tile_real.sum())
    pairs = 0
    cache = {}
    for w in windows:
        key = tuple(w)
        if key not in cache:
            p = 0
            for qt in range(layout.num_tiles):
                keys = sum(int(tile_real[kt]) for kt in layout.key_tiles(w, qt)) + layout.text_valid
                p += int(tile_real[qt]) * keys
            p += layout.text_valid * (real_video + layout.text_valid)
            cache[key] = p
        pairs += cache[key]
    return 4.0 * head_dim * pairs * batch


class Kernels:
    def __init__(self, case):
        self.module = cp.RawModule(path=os.path.join(CUBINS, case["name"] + ".cubin"))
        self.prepare = self.module.get_function("sta_backward_prepare_sm80")
        self.dkdv = self.module.get_function("sta_backward_dkdv_sm80")
        self.dq = self.module.get_function("sta_backward_dq_sm80")
        D = case["head_dim"]
        self.D = D
        chunk = case.get("dkv_chunk", 32 if D == 128 else 64)
        self.dkdv_smem = (2 * 128 + 4 * chunk) * D * 2
        self.dq_smem = (2 * 128 + 4 * 64) * D * 2
        self.dkdv.max_dynamic_shared_size_bytes = self.dkdv_smem
        self.dq.max_dynamic_shared_size_bytes = self.dq_smem

    def run(self, layout, tables, batch, heads, q, k, v, o, do, lse, dq, dk, dv, lse2, delta, scale):
        c = lambda t: cp.from_dlpack(t.detach())
        D = self.D
        rows = batch * heads * layout.S
        per_block = 256 // (D // 8)
        self.prepare(((rows + per_block - 1) // per_block,), (256,),
                     (c(o), c(do), c(lse), c(lse2), c(delta), np.int64(rows)))
        blocks = (layout.text_count + 127) // 128 + layout.num_tiles * ((layout.tile_vol + 127) // 128)
        woh, kts, kt, qts, qt = tables
        self.dkdv((blocks, heads, batch), (256,),
                  (c(q), c(k), c(v), c(do), c(lse2), c(delta), c(dk), c(dv), woh, qts, qt,
                   np.int32(heads), np.float32(scale)), shared_mem=self.dkdv_smem)
        self.dq((blocks, heads, batch), (256,),
                (c(q), c(k), c(v), c(do), c(lse2), c(delta), c(dq), woh, kts, kt,
                 np.int32(heads), np.float32(scale)), shared_mem=self.dq_smem)


def main():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    for case in CASES:
        t0 = time.time()
        layout = Layout(case)
        windows, batch, D = case["windows"], case["batch"], case["head_dim"]
        H, S = len(windows), layout.S
        dtype = torch.bfloat16 if case["dtype"] == "bf16" else torch.float16
        woh, kts, kt, qts, qt, _ = plan_tables(layout, windows)
        tables = tuple(cp.asarray(x) for x in (woh, kts, kt, qts, qt))
        kernels = Kernels(case)
        scale = 1.0 / math.sqrt(D)
        shape = (batch, H, S, D)
        q, k, v, do = (torch.randn(shape, device=dev).to(dtype) for _ in range(4))
        real = torch.tensor(layout.real, device=dev)
        if case["check"]:
            mask = dense_mask(layout, windows, dev)  # [H, S, S]
            q64, k64, v64 = (x.double().requires_grad_(True) for x in (q, k, v))
            logits = torch.einsum("bhid,bhjd->bhij", q64, k64) * scale
            logits = torch.where(mask[None], logits, torch.tensor(-math.inf, device=dev, dtype=torch.float64))
            rowany = mask.any(-1)[None]  # [1, H, S]
            logits = torch.where(rowany[..., None], logits, torch.zeros((), device=dev, dtype=torch.float64))
            lse64 = torch.logsumexp(logits, -1)
            p = torch.softmax(logits, -1) * rowany[..., None]
            o64 = torch.einsum("bhij,bhjd->bhid", p, v64)
            (o64 * do.double()).sum().backward()
            o = o64.detach().to(dtype)
            lse = torch.where(rowany, lse64.detach(), torch.tensor(-math.inf, device=dev, dtype=torch.float64)).float()
            # Garbage (NaN) in rows the kernel must never read: holes and padding text of every input.
            q, k, v, do, o = (t.clone() for t in (q, k, v, do, o))
            for t in (q, k, v, do, o):
                t[:, :, ~real] = float("nan")
        else:
            o = torch.randn(shape, device=dev).to(dtype)
            lse = torch.randn((batch, H, S), device=dev) + 8.0
        dq, dk, dv = (torch.full(shape, float("nan"), device=dev) for _ in range(3))
        lse2, delta = (torch.full((batch, H, S), float("nan"), device=dev) for _ in range(2))
        kernels.run(layout, tables, batch, H, q, k, v, o, do, lse, dq, dk, dv, lse2, delta, scale)
        torch.cuda.synchronize()
        result = dict(case=case["name"])
        if case["check"]:
            limit = 1e-2 if dtype == torch.bfloat16 else 3e-3
            ok = True
            for name, got, ref in (("dq", dq, q64.grad), ("dk", dk, k64.grad), ("dv", dv, v64.grad)):
                nan = int(torch.isnan(got).sum())
                err = float((got.double() - ref).norm() / ref.norm())
                # Rows nothing attends / that attend nothing must be exactly zero.
                zero_rows_ok = bool((got[:, :, ~real] == 0).all())
                result[name] = dict(rel=err, nan=nan, zero_rows=zero_rows_ok)
                ok &= nan == 0 and err < limit and zero_rows_ok
            result["pass"] = ok
        else:
            result["nan"] = [int(torch.isnan(x).sum()) for x in (dq, dk, dv)]
            fl = effective_flops(layout, windows, batch, D)
            times = {"prepare": [], "dkdv": [], "dq": [], "total": []}
            for _ in range(5):
                ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
                c = lambda t: cp.from_dlpack(t.detach())
                rows = batch * H * S
                per_block = 256 // (D // 8)
                blocks = (layout.text_count + 127) // 128 + layout.num_tiles * ((layout.tile_vol + 127) // 128)
                woh_, kts_, kt_, qts_, qt_ = tables
                ev[0].record()
                kernels.prepare(((rows + per_block - 1) // per_block,), (256,),
                                (c(o), c(do), c(lse), c(lse2), c(delta), np.int64(rows)))
                ev[1].record()
                kernels.dkdv((blocks, H, batch), (256,),
                             (c(q), c(k), c(v), c(do), c(lse2), c(delta), c(dk), c(dv), woh_, qts_, qt_,
                              np.int32(H), np.float32(scale)), shared_mem=kernels.dkdv_smem)
                ev[2].record()
                kernels.dq((blocks, H, batch), (256,),
                           (c(q), c(k), c(v), c(do), c(lse2), c(delta), c(dq), woh_, kts_, kt_,
                            np.int32(H), np.float32(scale)), shared_mem=kernels.dq_smem)
                ev[3].record()
                torch.cuda.synchronize()
                times["prepare"].append(ev[0].elapsed_time(ev[1]))
                times["dkdv"].append(ev[1].elapsed_time(ev[2]))
                times["dq"].append(ev[2].elapsed_time(ev[3]))
                times["total"].append(ev[0].elapsed_time(ev[3]))
            med = {key: sorted(val)[len(val) // 2] for key, val in times.items()}
            result["ms"] = med
            result["forward_effective_tflop"] = fl / 1e12
            result["backward_tflops"] = 2.5 * fl / (med["total"] * 1e-3) / 1e12
        result["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(result), flush=True)


def dense_reference_timing():
    """cuDNN dense attention (PyTorch SDPA) forward and backward on the hunyuan shape, for scale."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    shape = (1, 24, 115456, 128)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    do = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    fwd, bwd = [], []
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        for _ in range(3):
            e = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            e[0].record()
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            e[1].record()
            out.backward(do)
            e[2].record()
            torch.cuda.synchronize()
            fwd.append(e[0].elapsed_time(e[1]))
            bwd.append(e[1].elapsed_time(e[2]))
            q.grad = k.grad = v.grad = None
    flops = 4.0 * 24 * 115456 ** 2 * 128
    print(json.dumps(dict(case="cudnn_dense_hunyuan", fwd_ms=sorted(fwd)[1], bwd_ms=sorted(bwd)[1],
                          bwd_tflops=2.5 * flops / (sorted(bwd)[1] * 1e-3) / 1e12)), flush=True)


if __name__ == "__main__":
    main()
    try:
        dense_reference_timing()
    except Exception as error:  # the reference is optional
        print("dense reference failed:", error)
