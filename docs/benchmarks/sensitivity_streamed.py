"""Streamed vs in-memory exact sensitivity: same scores, peak memory, wall time, as blocks are added.

For random-weight llama models of growing depth (bf16 on disk), runs the exact sensitivity pass twice —
whole model in memory, then streamed (one block read from disk at a time) — and prints the largest
relative difference of their scores, each run's peak MLX memory above what was alive before it, and
the fp32 size of the weights (what the in-memory pass must hold).

    LD_PRELOAD=$(.venv/bin/python -m temper.core.accel.blas --preload-path) \\
        .venv/bin/python docs/benchmarks/sensitivity_streamed.py [--layers 4,8,16] [--out-md FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="4,8,16")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args()
    os.environ["TEMPER_HOME"] = tempfile.mkdtemp(prefix="temper-bench-")

    import numpy as np
    from temper.core.engine import Engine
    from temper.core.library.synthetic import build_model
    from temper.core.quant.calibration import TokenSet
    from temper.core.quant.candidates import grid
    from temper.core.quant.sensitivity import run_sensitivity
    from temper.core.quant.streamed import fp32_bytes

    engine = Engine()
    work = Path(tempfile.mkdtemp(prefix="temper-streamed-"))
    cands = grid(bits=(2, 4), group_sizes=(64,))
    tokens = TokenSet("random", "calibration", np.random.default_rng(0).integers(
        0, 500, (args.samples, args.seq_len)).astype(np.int32))
    rows = []
    for n in [int(x) for x in args.layers.split(",")]:
        model = engine.run(lambda ctx, n=n: build_model(work / f"l{n}", "llama", dtype="bfloat16", overrides={
            "num_hidden_layers": n, "hidden_size": args.hidden, "intermediate_size": args.intermediate}))
        res = {}
        for streamed in (False, True):
            t0 = time.perf_counter()
            table = engine.run(lambda ctx, s=streamed, n=n, model=model: run_sensitivity(
                ctx, model, cands, tokens, mode="exact", streamed=s, out=work / f"l{n}-{s}.json"))
            res[streamed] = (table, time.perf_counter() - t0)
        worst = max(abs(a.scores[k] - b.scores[k]) / max(abs(a.scores[k]), 1e-30)
                    for a, b in zip(res[False][0].tensors, res[True][0].tensors, strict=True) for k in a.scores)
        peak = {s: (t.meta["peak_mlx_bytes"] - t.meta["baseline_mlx_bytes"]) / 2**20 for s, (t, _) in res.items()}
        rows.append((n, fp32_bytes(model) / 2**20, peak[False], peak[True], res[False][1], res[True][1],
                     res[True][0].meta["block_loads"], worst))
    engine.shutdown()
    lines = ["# Streamed exact sensitivity vs in memory", "",
             f"Random-weight llama, hidden {args.hidden}, intermediate {args.intermediate}, bf16 on disk; "
             f"candidates {', '.join(c.key for c in cands)}; calibration {args.samples} x {args.seq_len} tokens. "
             "Peak = MLX peak memory during the run minus what was alive before it. Wall times share 2 CPU "
             "cores with other work: indicative only.", "",
             "| blocks | fp32 weights MiB | peak in memory MiB | peak streamed MiB | s in memory | s streamed "
             "| block reads | max rel. score diff |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, size, pm, ps, tm, ts, loads, worst in rows:
        lines.append(f"| {n} | {size:.1f} | {pm:.1f} | {ps:.1f} | {tm:.1f} | {ts:.1f} | {loads} | {worst:.1e} |")
    lines += ["", "Command:", "", "    LD_PRELOAD=$(.venv/bin/python -m temper.core.accel.blas --preload-path) "
              f".venv/bin/python docs/benchmarks/sensitivity_streamed.py --layers {args.layers}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        args.out_md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
