"""Reads the `T` records that the timeline variants print (`sta bench` with STA_KERNEL_SOURCES=timeline/,
pingpong-timeline/, tensor-only/ or no-exp/; one timed launch) and prints, for the CTAs of the last launch
on multiprocessor 0 that have the median number of chunks: the medians of each stamp after the CTA's
entry, the cycles per chunk of the main loop, the per-phase cycles per chunk of the consumer step (when the
record has them), and the gap between consecutive CTAs.

A record: T block sm t0 init q_in k0_in first_softmax last_pv epilogue producer_last chunks [P waits issue
qk_wait softmax pv_wait pack], in cycles of the multiprocessor's clock64. The stamps are one consumer
thread's (warpgroup 1): on layouts where that warpgroup computes no chunk of some blocks (wan's packed
64-row blocks) the loop stamps are stale. Usage: python3 analyze.py FILE..."""
import statistics as st
import sys

BACKWARD = ["Q wait", "issue Sᵀ, dPᵀ", "Sᵀ wait", "Pᵀ, dV issue", "dPᵀ wait", "dSᵀ, dK issue",
            "DS barrier", "dQ issue", "wait all", "dQ out, DQ barrier"]
STAMPS = ["init", "Q in", "K0 in", "first softmax", "last P·V", "epilogue", "producer last"]
PHASES = ["stage waits", "issue", "Q·Kᵀ wait", "mask+softmax", "P·V wait", "release+pack"]

def backward(name):
    rows = [line.split() for line in open(name) if line.startswith("B ")]
    rs = [dict(sm=int(f[2]), n=int(f[3]), ph=[int(x) for x in f[5:15]]) for f in rows]
    rs = [r for r in rs if r["sm"] == 0 and r["n"] > 0]
    n = st.median(r["n"] for r in rs)
    same = [r for r in rs if r["n"] == n]
    ph = [st.median(r["ph"][k] / r["n"] for r in same) for k in range(10)]
    print(f"{name}: {len(same)} key blocks of {n} chunks on SM 0, {sum(ph):.0f} cycles per chunk")
    print("  per chunk: " + ", ".join(f"{p} {x:.0f}" for p, x in zip(BACKWARD, ph)))


for name in sys.argv[1:]:
    if any(line.startswith("B ") for line in open(name)):
        backward(name)
        continue
    records = []
    for line in open(name):
        if not line.startswith("T "):
            continue
        f = line.split()
        phases = [int(x) for x in f[f.index("P") + 1:]] if "P" in f else []
        records.append(dict(sm=int(f[2]), t0=int(f[3]), d=[int(x) for x in f[4:11]], n=int(f[11]), ph=phases))
    rs = sorted((r for r in records if r["sm"] == 0), key=lambda r: r["t0"])
    last = max([k for k in range(1, len(rs)) if rs[k]["t0"] - rs[k - 1]["t0"] > 20_000_000] or [0])
    rs = rs[last:]
    n = st.median(r["n"] for r in rs)
    same = [r for r in rs if r["n"] == n]
    per = st.median((r["d"][4] - r["d"][3]) / (r["n"] - 1) for r in same)
    gaps = sorted(b["t0"] - (a["t0"] + a["d"][5]) for a, b in zip(rs, rs[1:]))
    print(f"{name}: {len(same)} CTAs of {n} chunks on SM 0, {per:.0f} cycles per chunk, gap between CTAs {gaps[len(gaps) // 2]}")
    print("  stamps: " + ", ".join(f"{s} {st.median(r['d'][k] for r in same):.0f}" for k, s in enumerate(STAMPS)))
    if same[0]["ph"]:
        print("  per chunk: " + ", ".join(f"{p} {st.median(r['ph'][k] / (r['n'] - 1) for r in same):.0f}" for k, p in enumerate(PHASES)))
