"""Held-out evaluation on a CPU: the reference's vocabulary-wide math in MLX against NumPy, in the same run.

    nice -n 15 python docs/benchmarks/eval_numpy_cpu.py BASE QUANT [--samples 16] [--seq-len 256] [--paths mlx,numpy]

Times what the quantize job's evaluate phase and `temper eval` run: `reference(BASE, chunks)` (load the base,
its log-probs on the held-out chunks) and `compare_folder(ref, QUANT)` (load the quantized folder, per-token
KL, top-1, perplexity), on the default evaluation set (`evaluation_set`, 16 x 256 tokens as the job builds
it). "mlx" forces the MLX path (mx.logsumexp, mx.exp: scalar code on MLX's CPU backend), "numpy" the NumPy
one (core/quant/host_math.py, what a CPU now uses); the model forwards are MLX in both. Prints wall and
process CPU seconds of each step, the load average, and the quality figures of each path with their
relative differences.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> int:
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    ap = argparse.ArgumentParser()
    ap.add_argument("base", type=Path)
    ap.add_argument("quant", type=Path)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--paths", default="mlx,numpy,numpy,mlx",
                    help="comma-separated, run in this order (a path twice: its mean; both orders cancel drift)")
    args = ap.parse_args()

    from temper.core.accel.blas import blas_status
    from temper.core.engine.loader import open_tokenizer
    from temper.core.quant import host_math
    from temper.core.quant.calibration import evaluation_set
    from temper.core.quant.evaluate import compare_folder, reference

    held = evaluation_set(open_tokenizer(args.base), samples=args.samples, seq_len=args.seq_len)
    chunks = [list(map(int, row)) for row in held.chunks]
    print(f"base {args.base}\nquant {args.quant}\nevaluation: {held.describe()} "
          f"({len(chunks)} x {len(chunks[0])} tokens); BLAS: {blas_status().line()}; pid {os.getpid()}")
    print(f"{'path':6} {'step':10} {'wall s':>7} {'CPU s':>7} {'load':>10}")
    results: dict[str, list] = {}
    for path in args.paths.split(","):
        host_math.FORCE = {"mlx": False, "numpy": True}[path]
        steps = {}
        for step in ("reference", "compare"):
            load0, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
            if step == "reference":
                ref = reference(args.base, chunks)
            else:
                quality = compare_folder(ref, args.quant)
            steps[step] = (time.perf_counter() - wall, time.process_time() - cpu)
            print(f"{path:6} {step:10} {steps[step][0]:7.2f} {steps[step][1]:7.2f} "
                  f"{load0:4.2f}-{os.getloadavg()[0]:4.2f}", flush=True)
        total = tuple(sum(v[i] for v in steps.values()) for i in (0, 1))
        print(f"{path:6} {'total':10} {total[0]:7.2f} {total[1]:7.2f}")
        results.setdefault(path, []).append((total, quality, ref.ppl))
        del ref
    print()
    for path, runs in results.items():
        _, q, base_ppl = runs[-1]
        print(f"{path:6} KL mean {q.kl_mean:.7f} ± {q.kl_se:.7f}  p99 {q.kl_p99:.6f}  max {q.kl_max:.6f}  "
              f"top-1 {q.top1:.6f}  PPL {q.ppl:.6f}  base PPL {base_ppl:.6f}  ({q.reference})")
    if {"mlx", "numpy"} <= results.keys():
        (_, qm, bm), (_, qn, bn) = results["mlx"][-1], results["numpy"][-1]
        tm, tn = ([sum(r[0][i] for r in results[p]) / len(results[p]) for i in (0, 1)] for p in ("mlx", "numpy"))

        def rel(a: float, b: float) -> str:
            return f"{abs(a - b) / max(abs(b), 1e-30):.1e}"

        print(f"numpy vs mlx: relative difference KL mean {rel(qn.kl_mean, qm.kl_mean)}, top-1 "
              f"{rel(qn.top1, qm.top1)}, PPL {rel(qn.ppl, qm.ppl)}, base PPL {rel(bn, bm)}")
        print(f"mean of each path: mlx wall {tm[0]:.2f} s, CPU {tm[1]:.2f} s; numpy wall {tn[0]:.2f} s, CPU "
              f"{tn[1]:.2f} s; speed-up (reference + compare): wall {tm[0] / tn[0]:.2f}x, CPU {tm[1] / tn[1]:.2f}x")
    lse_accuracy(args.base, chunks[0])
    return 0


def lse_accuracy(base: Path, chunk: list[int]) -> None:
    """Both paths' logsumexp of the base's logits on one chunk against float64: why their figures differ."""
    import mlx.core as mx
    import numpy as np
    from temper.core.engine.loader import open_model
    from temper.core.quant import host_math
    from temper.core.quant.evaluate import _fast_on_cpu
    from temper.core.quant.reference import forward

    model, _ = open_model(base)
    _fast_on_cpu(model)
    logits = forward(model, mx.array([chunk]))
    mx.eval(logits)
    exact = np.asarray(logits).astype(np.float64)
    top = exact.max(axis=-1, keepdims=True)
    exact = np.log(np.exp(exact - top).sum(axis=-1, keepdims=True)) + top
    for name, lse in (("mlx", np.asarray(mx.logsumexp(logits, axis=-1, keepdims=True))),
                      ("numpy", host_math.logsumexp(host_math.host(logits)))):
        err = lse.astype(np.float64) - exact
        print(f"{name:6} logsumexp - float64 over {len(chunk)} positions: mean {err.mean():+.2e}, "
              f"max |.| {np.abs(err).max():.2e} (nats: shifts every log-prob, so NLL and PPL)")


if __name__ == "__main__":
    raise SystemExit(main())
