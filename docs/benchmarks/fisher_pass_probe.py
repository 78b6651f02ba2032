"""Two quick probes of the Fisher (fast) sensitivity pass, each printing one Markdown block.

    .venv/bin/python docs/benchmarks/fisher_pass_probe.py memory MODEL [--sequences 1]

  MLX memory (active / peak) and RSS after loading MODEL as the pass does (run.load), with the statistics
  allocated, and at the end of each calibration sequence (random tokens, 256 each), default 18 candidates.

    .venv/bin/python docs/benchmarks/fisher_pass_probe.py accumulate

  bf16 vs fp32 statistics on the trained fixture cast to bf16 (16 x 128 tokens): Spearman rho of the
  estimates and their relative difference (the pass accumulates in bf16 for a bf16 model).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def memory(model_path: Path, sequences: int) -> None:
    import mlx.core as mx
    import numpy as np
    import psutil
    from temper.core.quant import estimate
    from temper.core.quant.candidates import AFFINE_BITS, grid
    from temper.core.quant.sensitivity_run import SensitivityRun
    from temper.core.quant.tensors import quantizable

    proc = psutil.Process()
    rows = ["| point | RSS GB | MLX active GB | MLX peak GB |", "|---|---:|---:|---:|"]

    def say(what: str) -> None:
        rows.append(f"| {what} | {proc.memory_info().rss / 1e9:.2f} | {mx.get_active_memory() / 1e9:.2f} | "
                    f"{mx.get_peak_memory() / 1e9:.2f} |")
        print(rows[-1], flush=True)

    run = SensitivityRun(None, model_path, [], None, "fast", 0.25, 0, None, None)
    model, storage = run.load(fisher_only=True)
    say("model loaded as the pass loads it")
    chunks = np.random.default_rng(0).integers(0, 1000, (sequences, 256)).astype(np.int32)
    sizes: dict[str, int] = {}

    def progress(done: int, total: int, message: str) -> None:
        if "sequence" in message:
            say(f"after {message}")

    estimate.fisher_estimates(model, chunks, quantizable(model), grid(AFFINE_BITS, (32, 64, 128)),
                              storage_dtype=storage, progress=progress, sizes=sizes)
    say("after scoring (statistics freed)")
    print(f"\nModel `{model_path}`; statistics {sizes['statistics'] / 1e9:.2f} GB; load average "
          f"{os.getloadavg()[0]:.1f}.\n\n" + "\n".join(rows))


def accumulate() -> None:
    import mlx.core as mx
    import numpy as np
    from mlx_lm.utils import load_model
    from temper.core.quant import estimate
    from temper.core.quant.candidates import AFFINE_BITS, grid
    from temper.core.quant.rank_correlation import spearman
    from temper.core.quant.tensors import quantizable

    model, _ = load_model(ROOT / "tests/fixtures/trained-tiny")
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    tensors = quantizable(model)
    chunks = np.random.default_rng(0).integers(0, 500, (16, 128)).astype(np.int32)
    cands = grid(AFFINE_BITS, (32, 64))
    bf16 = estimate.fisher_estimates(model, chunks, tensors, cands, storage_dtype=mx.bfloat16)
    init = estimate._Stats.__init__
    estimate._Stats.__init__ = lambda self, r, c, g, dtype: init(self, r, c, g, mx.float32)  # noqa: ARG005
    fp32 = estimate.fisher_estimates(model, chunks, tensors, cands, storage_dtype=mx.bfloat16)
    pairs = [(t.path, c.key) for t in tensors for c in cands if c.key in bf16[t.path]]
    a = np.array([bf16[p][k] for p, k in pairs])
    b = np.array([fp32[p][k] for p, k in pairs])
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
    worst = min(spearman([bf16[t.path][c.key] for t in tensors if c.key in bf16[t.path]],
                         [fp32[t.path][c.key] for t in tensors if c.key in fp32[t.path]]) for c in cands)
    print(f"trained-tiny in bf16, {len(pairs)} (tensor, candidate) pairs: Spearman rho bf16 vs fp32 statistics "
          f"{spearman(list(a), list(b)):.4f} over all pairs, {worst:.4f} for the worst candidate; relative "
          f"difference median {np.median(rel):.2e}, max {rel.max():.2e}.")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("memory", "accumulate"))
    p.add_argument("model", nargs="?", type=Path)
    p.add_argument("--sequences", type=int, default=1)
    args = p.parse_args()
    if args.what == "memory":
        if args.model is None:
            p.error("memory needs MODEL")
        memory(args.model, args.sequences)
    else:
        accumulate()
    return 0


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    sys.exit(main())
