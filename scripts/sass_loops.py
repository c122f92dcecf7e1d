#!/usr/bin/env python3
"""Prints the loops of each kernel in a SASS listing that issue wgmmas (HGMMA): where each starts and ends
and how many instructions it holds, wgmma and other. A change outside a main loop can still change the
loop's code (ptxas allocates registers and hoists arithmetic over the whole kernel); compare these counts
before and after any kernel change, without device time.

Usage:
  sta kernels --arch sm_90a --ptx DIR                # the PTX of every catalogue specialisation
  ptxas -arch=sm_90a DIR/NAME.ptx -o k.cubin && nvdisasm -c k.cubin > k.sass
  python3 scripts/sass_loops.py k.sass [KERNEL]

A loop is a backward branch and the instructions from its target to it; the retry branches of barrier
waits show up as outer "loops" around the main loop, so the shortest one with every wgmma is the main loop.
"""
import re
import signal
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head


def kernels(sass):
    names = re.findall(r"^\s*\.text\.(\w+):", sass, re.M)
    for name in names:
        start = sass.find(f".text.{name}:")
        end = sass.find(".text.", start + 10)
        yield name, sass[start:end if end > 0 else None]


def loops(body):
    labels, instructions = {}, []
    for line in body.split("\n"):
        label = re.match(r"\s*\.(L_x_\d+):", line)
        if label:
            labels[label.group(1)] = len(instructions)
            continue
        instruction = re.search(r"/\*[0-9a-f]{4}\*/\s+(.*?);", line)
        if instruction:
            instructions.append(instruction.group(1).strip())
    for end, text in enumerate(instructions):
        branch = re.search(r"BRA\s+(?:\S+\s+)?`?\(?\.?(L_x_\d+)", text)
        if branch and labels.get(branch.group(1), end) < end:
            start = labels[branch.group(1)]
            wgmmas = sum("HGMMA" in t for t in instructions[start:end + 1])
            if wgmmas:
                yield start, end, end - start + 1, wgmmas


def main():
    sass = open(sys.argv[1]).read()
    only = sys.argv[2] if len(sys.argv) > 2 else None
    for name, body in kernels(sass):
        if only and name != only:
            continue
        for start, end, length, wgmmas in loops(body):
            print(f"{name}: instructions {start}..{end}: {length} ({wgmmas} wgmma, {length - wgmmas} other)")


if __name__ == "__main__":
    main()
