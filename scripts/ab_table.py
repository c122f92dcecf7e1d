#!/usr/bin/env python3
"""The table of an A/B record: each variant's times per problem and its mean's change against a base.

Reads the summary lines the device records' run scripts print for each `sta bench --json` run,

    TAG PROBLEM   MS ms  SHARE % of RATE        e.g.  VW  hunyuan 3x3x3   21.763 ms  87.7 % of 807

and prints a Markdown table: per problem, every variant's times (in the order they ran) and the change of
their mean against the base variant's mean (the first tag seen, or --base). Other lines are skipped.

Usage:
  python3 scripts/ab_table.py benchmarks/h200/DATE-WHAT/summary.txt [more summaries] [--base A]
"""
import argparse
import re
import signal
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head

LINE = re.compile(r"^(\S+)\s+(.+?)\s+([0-9.]+) ms\s+([0-9.]+) % of ([0-9.]+)\s*$")


def read(paths):
    """{problem: {tag: [ms, ...]}} in first-seen order, and the tags in first-seen order."""
    runs, tags = {}, []
    for path in paths:
        with open(path) as f:
            for line in f:
                m = LINE.match(line.rstrip("\n"))
                if not m:
                    continue
                tag, problem, ms = m.group(1), m.group(2).strip(), float(m.group(3))
                runs.setdefault(problem, {}).setdefault(tag, []).append(ms)
                if tag not in tags:
                    tags.append(tag)
    return runs, tags


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+")
    parser.add_argument("--base", help="the variant the others are compared with (default: the first seen)")
    args = parser.parse_args()
    runs, tags = read(args.summaries)
    if not runs:
        sys.exit("no summary lines found (TAG PROBLEM MS ms SHARE % of RATE)")
    base = args.base or tags[0]
    if base not in tags:
        sys.exit(f"--base {base}: no such variant (variants: {', '.join(tags)})")
    print(f"| problem | {' | '.join(tags)} |")
    print(f"|---|{'---|' * len(tags)}")
    for problem, by_tag in runs.items():
        base_runs = by_tag.get(base)
        base_mean = sum(base_runs) / len(base_runs) if base_runs else None
        cells = []
        for tag in tags:
            times = by_tag.get(tag)
            if not times:
                cells.append("")
                continue
            mean = sum(times) / len(times)
            cell = " / ".join(f"{t:.3f}" for t in times)
            if base_mean and tag != base:
                cell += f" ({100 * (mean / base_mean - 1):+.1f} %)"
            cells.append(cell)
        print(f"| {problem} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
