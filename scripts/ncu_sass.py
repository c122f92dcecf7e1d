#!/usr/bin/env python3
"""Summarise the SASS source page of an Nsight Compute report.

Input: the CSV that `ncu --import REPORT.ncu-rep --page source --csv --print-source sass` prints (plain or
gzipped), one row per SASS instruction with its warp-state samples. Prints the stall reasons over the
whole kernel, then one of:
  hot                 the 40 instructions with the most samples (offset, executions, samples, top stalls);
  list LO HI          every instruction at offsets LO <= offset < HI (hex), in address order;
  ranges A,B,C,... N1,N2,...
                      the samples and executed instructions between consecutive offsets A, B, C, ... (hex),
                      named N1, N2, ... (one name fewer than offsets).
Offsets count from the kernel's first instruction, as `cuobjdump -sass` prints them.

Example: scripts/ncu_sass.py benchmarks/h200/2026-12-01-profile/fwd_hy_sass.csv.gz hot
"""
import csv
import gzip
import sys
from collections import Counter


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = list(csv.reader(f))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    names = rows[header]
    column = {name: i for i, name in enumerate(names)}
    stalls = [n for n in names if n.startswith("stall_") and "Not Issued" not in n]
    instructions = []
    for r in rows[header + 1:]:
        if len(r) < len(names):
            continue
        instructions.append({
            "address": int(r[column["Address"]], 16),
            "source": r[column["Source"]].strip(),
            "samples": int(r[column["Warp Stall Sampling (All Samples)"]] or 0),
            "executed": int(r[column["Instructions Executed"]] or 0),
            "stalls": {s[len("stall_"):]: int(r[column[s]] or 0) for s in stalls},
        })
    base = instructions[0]["address"]
    for i in instructions:
        i["offset"] = i["address"] - base
    return instructions


def top_stalls(instruction, n=3):
    ranked = sorted(instruction["stalls"].items(), key=lambda kv: -kv[1])[:n]
    return " ".join(f"{k}={v}" for k, v in ranked if v)


def line(i, total):
    return (f"{i['offset']:05x} {i['executed']:>11d} {i['samples']:7d} {100 * i['samples'] / total:5.1f}%  "
            f"{i['source'][:56]:56s} {top_stalls(i)}")


def main(argv):
    if len(argv) < 3 or argv[2] not in ("hot", "list", "ranges"):
        sys.exit(__doc__)
    instructions = read(argv[1])
    total = sum(i["samples"] for i in instructions) or 1
    print(f"{len(instructions)} instructions, {total} samples")
    reasons = Counter()
    for i in instructions:
        reasons.update(i["stalls"])
    for reason, count in reasons.most_common():
        if count:
            print(f"  {reason:20s} {count:9d} {100 * count / total:5.1f} %")
    mode = argv[2]
    if mode == "hot":
        for i in sorted(instructions, key=lambda i: -i["samples"])[:40]:
            print(line(i, total))
    elif mode == "list":
        if len(argv) != 5:
            sys.exit("list needs LO and HI (hex offsets)")
        lo, hi = int(argv[3], 16), int(argv[4], 16)
        for i in instructions:
            if lo <= i["offset"] < hi:
                print(line(i, total))
    else:
        if len(argv) != 5:
            sys.exit("ranges needs offsets A,B,... and names N1,N2,...")
        bounds = [int(x, 16) for x in argv[3].split(",")]
        names = argv[4].split(",")
        if len(names) != len(bounds) - 1:
            sys.exit(f"{len(bounds)} offsets need {len(bounds) - 1} names, not {len(names)}")
        for name, lo, hi in zip(names, bounds, bounds[1:]):
            inside = [i for i in instructions if lo <= i["offset"] < hi]
            samples = sum(i["samples"] for i in inside)
            executed = sum(i["executed"] for i in inside)
            print(f"{name:24s} {samples:9d} {100 * samples / total:5.1f} %  executed {executed}")


if __name__ == "__main__":
    main(sys.argv)
