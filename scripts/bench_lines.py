#!/usr/bin/env python3
"""Prints one summary line per problem of a `sta bench --json` report, tagged with a variant's name:

    TAG PROBLEM   MS ms  SHARE % of RATE        (SHARE: the problem's rate over the report's matrix rate)

the lines the device records' A/B scripts collect in summary.txt and `ab_table.py` reads.

Usage: python3 scripts/bench_lines.py TAG REPORT.json
"""
import json
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__.strip().splitlines()[-1])
tag, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    report = json.load(f)
rate = report["matmul_bf16_tflops"]
for r in report["results"]:
    print(f'{tag:3s} {r["problem"]:28s} {r["median_ms"]:9.3f} ms  {100 * r["tflops"] / rate:5.1f} % of {rate:.0f}')
