"""Seconds per function and per line of one thread in a py-spy raw profile (`py-spy record -f raw --threads`).

    python docs/benchmarks/pyspy_summary.py PROFILE.txt --rate 10 [--thread temper-engine] [--top 30]

Inclusive seconds per function (each counted once per stack), then self seconds per source line. With
`--idle` recordings the waits (mx.eval, a GPU sync) show as time on the line that waits.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("--rate", type=float, required=True, help="samples per second the recording used")
    ap.add_argument("--thread", default="temper-engine")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    total = 0
    for row in open(args.profile, encoding="utf-8"):
        stack, _, count = row.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        if args.thread not in frames[0]:
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in frames[1:]:
            m = re.match(r"(.*) \((.*?):\d+\)$", frame)
            key = f"{m.group(1)}  {m.group(2).split('/')[-1]}" if m else frame
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
        lines[frames[-1]] += n
    print(f"{args.thread}: {total / args.rate:.1f} s sampled")
    print("inclusive:")
    for key, n in inclusive.most_common(args.top):
        print(f"  {n / args.rate:7.1f} s  {key}")
    print("self, by line:")
    for key, n in lines.most_common(args.top):
        print(f"  {n / args.rate:7.1f} s  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
