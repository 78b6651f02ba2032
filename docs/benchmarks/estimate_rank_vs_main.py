"""The Fisher estimate before (main's estimate.py, read from git) and after this branch, each against the exact ΔKL,
on the trained fixture, in ONE process (same calibration). Prints a Markdown report.

    .venv/bin/python docs/benchmarks/estimate_rank_vs_main.py --base a1865f1 > docs/benchmarks/estimate_rank_vs_main.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def old_module(commit: str) -> types.ModuleType:
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:core/quant/estimate.py"], check=True,
                         capture_output=True, text=True).stdout
    src = src.replace("from . import kl", "from temper.core.quant import reference as kl")  # kl.py is now reference.py
    src = src.replace("from .candidates", "from temper.core.quant.candidates")
    src = src.replace("from .tensors import QTensor, fake_quantize",
                      "from temper.core.quant.tensors import QTensor, fake_quantize")
    mod = types.ModuleType("old_estimate")
    exec(compile(src, "old_estimate.py", "exec"), mod.__dict__)
    return mod


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "tests/fixtures/trained-tiny"))
    p.add_argument("--base", default="main")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    args = p.parse_args()
    os.environ["TEMPER_HOME"] = tempfile.mkdtemp(prefix="temper-rank-")
    import mlx.core as mx
    from mlx_lm.utils import load_model, load_tokenizer
    from temper.core.engine import Engine
    from temper.core.quant.calibration import calibration_set
    from temper.core.quant.candidates import grid
    from temper.core.quant.estimate import fisher_estimates, spearman
    from temper.core.quant.sensitivity import run_sensitivity
    from temper.core.quant.tensors import quantizable

    model_path = Path(args.model)
    calib = calibration_set(load_tokenizer(model_path), samples=args.samples, seq_len=args.seq_len)
    cands = grid(bits=(2, 3, 4, 6, 8), group_sizes=(64,))
    old = old_module(args.base)
    engine = Engine()
    load0 = os.getloadavg()[0]
    exact = engine.run(lambda ctx: run_sensitivity(ctx, model_path, cands, calib, mode="exact"))

    def estimate(ctx, which):
        model, _ = load_model(model_path)
        storage = quantizable(model)[0].module["weight"].dtype
        model.set_dtype(mx.float32)
        tensors = quantizable(model)
        mx.reset_peak_memory()
        t0, c0 = time.perf_counter(), time.process_time()
        fn = old.fisher_estimates if which == "before" else fisher_estimates
        out = fn(model, calib.chunks, tensors, cands, storage_dtype=storage)
        return out, time.perf_counter() - t0, time.process_time() - c0, mx.get_peak_memory()

    rows = []
    for which in ("before", "after"):
        est, wall, cpu, peak = engine.run(lambda ctx, w=which: estimate(ctx, w))
        rhos = [spearman([est[t.path][c.key] for t in exact.tensors], [t.scores[c.key] for t in exact.tensors])
                for c in cands]
        pairs = [(est[t.path][c.key], t.scores[c.key]) for t in exact.tensors for c in cands]
        rows.append((which, rhos, spearman([a for a, _ in pairs], [b for _, b in pairs]), wall, cpu, peak))
    engine.shutdown()
    print("# Fisher estimate before/after: Spearman ρ against the exact ΔKL", "")
    print(f"Command: `.venv/bin/python docs/benchmarks/estimate_rank_vs_main.py {' '.join(sys.argv[1:])}`; "
          f"model `{model_path.name}` ({len(exact.tensors)} tensors); calibration {calib.describe()}; "
          f"before = `{args.base}`'s core/quant/estimate.py; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (2 shared cores: CPU seconds are fairer than wall).", "")
    print("| estimate | " + " | ".join(c.key for c in cands) + " | all pairs | wall s | CPU s | peak MLX MiB |")
    print("|---|" + "---:|" * (len(cands) + 4))
    for which, rhos, allp, wall, cpu, peak in rows:
        print(f"| {which} | " + " | ".join(f"{r:.3f}" for r in rhos) +
              f" | {allp:.4f} | {wall:.1f} | {cpu:.1f} | {peak / 2**20:.0f} |")
    print("\nThe fixture is tiny (1M parameters), so per-operation overhead dominates its timings: the point "
          "of the new form is that its cost is sequences × model + candidates × model instead of their product "
          "(see sensitivity_scale*.md for real shapes).")
    return 0


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    sys.exit(main())
