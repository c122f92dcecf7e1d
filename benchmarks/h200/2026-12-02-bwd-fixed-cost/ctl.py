"""Reads the `C` records of the CTA-timeline variant (cta-timeline.patch: block sm chunks t0..t5 in one SM's
clock64 cycles: entry, K and V in, first chunk's "Q full", loop end, last reduction done, epilogue done)
and prints, per multiprocessor, where its cycles went between the first CTA's entry and the last CTA's
exit in the file's last launch (`sta bench` launches the kernel more than once; a launch starts after a
gap of more than 20 M cycles): inside CTAs before the loop, in the loop, after it, and between CTAs.
Usage: python3 ctl.py FILE"""
import statistics as st
import sys

rows = [l.split() for l in open(sys.argv[1]) if l.startswith("C ")]
recs = [dict(b=int(f[1]), sm=int(f[2]), n=int(f[3]), t=[int(x) for x in f[4:10]]) for f in rows]
for sm in sorted({r["sm"] for r in recs}):
    rs = sorted((r for r in recs if r["sm"] == sm), key=lambda r: r["t"][0])
    last = max([k for k in range(1, len(rs)) if rs[k]["t"][0] - rs[k - 1]["t"][0] > 20_000_000] or [0])
    rs = rs[last:]
    real = [r for r in rs if r["n"] > 0]
    span = max(r["t"][5] if r["n"] > 0 else r["t"][0] for r in rs) - rs[0]["t"][0]
    ends = [r["t"][5] if r["n"] > 0 else r["t"][0] for r in rs]
    gaps = [b["t"][0] - e for e, b in zip(ends, rs[1:])]
    parts = {
        "entry to K,V in": sum(r["t"][1] - r["t"][0] for r in real),
        "K,V in to first Q": sum(r["t"][2] - r["t"][1] for r in real),
        "loop": sum(r["t"][3] - r["t"][2] for r in real),
        "last reduction": sum(r["t"][4] - r["t"][3] for r in real),
        "epilogue": sum(r["t"][5] - r["t"][4] for r in real),
        "between CTAs": sum(gaps),
    }
    chunks = sum(r["n"] for r in real)
    print(f"SM {sm}: {len(rs)} CTAs ({len(real)} with work, {chunks} chunks), span {span} cycles, "
          f"{parts['loop'] / chunks:.0f} loop cycles per chunk")
    for k, v in parts.items():
        print(f"  {k:18s} {100 * v / span:5.2f} %  median per CTA {st.median([v / len(real)]) if real else 0:.0f}")
    print("  per CTA medians: " + ", ".join(f"{k} {st.median(r['t'][i + 1] - r['t'][i] for r in real):.0f}"
                                        for i, k in enumerate(["K,V", "first Q", "loop", "reduction", "epilogue"])))
    print(f"  gap between CTAs: median {st.median(gaps):.0f}, max {max(gaps)}")
