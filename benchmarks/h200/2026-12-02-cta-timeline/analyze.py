"""Reads the `T` records of the timeline variant (`timeline/`, printed by `sta bench` with
STA_KERNEL_SOURCES=timeline) and prints, per multiprocessor (0 and 1), the medians of each stamp after the
CTA's entry, the gap between consecutive CTAs, the cycles per chunk of the main loop and the share of the
multiprocessor's busy span spent in chunk work. Usage: python3 analyze.py timeline-hunyuan-3x3x3.txt.
A record: T block sm t0 init q_in k0_in first_softmax last_pv epilogue producer_last chunks (cycles of the
SM's clock64, after t0). The stamps are one consumer thread's (warpgroup 1): on layouts where that
warpgroup computes no chunk of some blocks (wan's packed 64-row blocks) the loop stamps are stale."""
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.startswith('T ')]
recs = [dict(b=int(r[1]), sm=int(r[2]), t0=int(r[3]), d=[int(x) for x in r[4:11]], n=int(r[11])) for r in rows]
for sm in (0, 1):
    rs = sorted([r for r in recs if r['sm'] == sm], key=lambda r: r['t0'])
    # keep the last launch: split where t0 jumps by more than 10 ms worth of cycles
    cut = 0
    for k in range(1, len(rs)):
        if rs[k]['t0'] - rs[k-1]['t0'] > 20_000_000: cut = k
    rs = rs[cut:]
    nmed = st.median([r['n'] for r in rs])
    video = [r for r in rs if r['n'] <= 2 * nmed]
    gaps = [b['t0'] - (a['t0'] + a['d'][5]) for a, b in zip(rs, rs[1:])]
    print(f"SM {sm}: {len(rs)} CTAs, chunks median {nmed}")
    names = ['init', 'Q in', 'K0 in', 'first softmax', 'last PV', 'epilogue', 'producer last']
    for i, nm in enumerate(names):
        v = sorted(r['d'][i] for r in video)
        print(f"  {nm:14s} median {st.median(v):8.0f}  p10 {v[len(v)//10]:8d} p90 {v[9*len(v)//10]:8d}")
    g = sorted(gaps)
    print(f"  gap between CTAs: median {st.median(g):.0f}, p10 {g[len(g)//10]}, p90 {g[9*len(g)//10]}")
    per = st.median([(r['d'][4] - r['d'][3]) / (r['n'] - 1) for r in video if r['n'] > 1])
    tot = st.median([r['d'][5] for r in video])
    span = rs[-1]['t0'] + rs[-1]['d'][5] - rs[0]['t0']
    work = sum(r['n'] for r in rs) * per
    print(f"  per chunk {per:.0f}; CTA {tot:.0f} = {tot/per:.2f} chunks for {nmed} chunks; in-CTA overhead {tot - nmed*per:.0f} ({(tot - nmed*per)/per:.2f} chunks); gap {st.median(g)/per:.2f} chunks")
    print(f"  SM busy span {span}, chunk work {work:.0f} -> {100*work/span:.1f} % of the span in chunk work")
