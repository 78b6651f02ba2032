"""Wall time of `temper quantize` by source line: a py-spy raw profile of the engine thread, each sample given to
the deepest frame in temper's own code. MLX evaluates lazily on its own CPU thread, so a sample parked in
`mx.eval` (or `np.asarray` of an MLX array) is charged to the line that asked for the values: the model pass,
the product, the kernel behind it.

    temper quantize MODEL ... & sleep 3
    py-spy record -p $(pgrep -n -f 'temper.cli.main quantize') --idle -r 100 -f raw -o prof.txt
    python docs/benchmarks/pyspy_by_line.py prof.txt --rate 100 [--depth 2] [--top 30]
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second")
    ap.add_argument("--depth", type=int, default=1, help="temper frames shown per line, deepest first")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    lines: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.profile) as f:
        for row in f:
            stack, _, count = row.rstrip("\n").rpartition(" ")
            if "Engine._run" not in stack:           # the engine thread runs the job; other threads wait
                continue
            n = int(count)
            total += n
            ours = [fr for fr in stack.split(";") if re.search(r"\((core|cli)/", fr)]
            key = " < ".join(re.sub(r" \((?:core|cli)/(\S+)\.py:(\d+)\)", r" \1:\2", fr)
                             for fr in ours[-args.depth:][::-1])
            lines[key or "(outside temper)"] += n
    print(f"engine thread: {total / args.rate:.1f} s sampled\n\n| s | share | where |\n|---:|---:|---|")
    for key, n in lines.most_common(args.top):
        print(f"| {n / args.rate:.1f} | {100 * n / max(total, 1):.1f}% | `{key}` |")


if __name__ == "__main__":
    main()
