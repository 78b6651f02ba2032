"""The Fisher pass whole and in parts (core/quant/fisher_groups.py) on one model, same run: peak MLX memory above
the loaded model, the statistics held at once, wall time, and how far the parts' scores are from the whole pass's.

The parts are forced by giving the pass a room of 1/K of its statistics, or the largest tensor's where that is
more (what a machine short of memory would give it). On a real model the scores must agree to float32 rounding:
the parts change which gradients are made per pass, not the numbers. Each run loads the model afresh and
compacts its looked-up tables (`compact`, as the sensitivity run's fast pass does: fisher_tables.py).

    python docs/benchmarks/fisher_parts.py MODEL_FOLDER [--parts 1 3] [--samples 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--parts", type=int, nargs="+", default=[1, 3])
    p.add_argument("--samples", type=int, default=8)
    args = p.parse_args()

    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    import mlx.core as mx
    from mlx_lm import load
    from temper.core.quant import fisher_groups
    from temper.core.quant.calibration import calibration_set
    from temper.core.quant.candidates import grid
    from temper.core.quant.logit_head import find_head
    from temper.core.quant.tensors import quantizable

    def loaded():
        model, tokenizer = load(str(args.model))
        storage = quantizable(model)[0].module["weight"].dtype
        if mx.default_device() == mx.cpu:       # as the sensitivity run does on a CPU: float32 products (BLAS)
            model.set_dtype(mx.float32)
            mx.eval(model.parameters())
        return model, tokenizer, storage

    model, tokenizer, storage = loaded()
    element = 2 if storage == mx.bfloat16 else 4
    chunks = calibration_set(tokenizer, samples=args.samples, seq_len=256).chunks
    cands = grid(bits=(2, 3, 4, 5, 6, 8))
    head = find_head(model)
    reach = fisher_groups.Reach.of(chunks, head.vocab)
    tensors = quantizable(model)
    total = fisher_groups.needed_bytes(tensors, cands, element, head.path, reach)
    largest = max(fisher_groups.needed_bytes([t], cands, element, head.path, reach) for t in tensors)
    print(f"{args.model.name}: {sum(t.params for t in tensors) / 1e6:.1f}M quantizable weights, the pass holds "
          f"{total / 1e6:.1f} MB for them ({mx.default_device()}, {len(chunks)} x 256 tokens)")
    base_scores = None
    for k in args.parts:
        if base_scores is not None:
            del model, tensors
            mx.clear_cache()
            model, _, _ = loaded()
            tensors = quantizable(model)
        room = fisher_groups.WORKING + (max(total // k, largest) if k > 1 else 1 << 50)
        split = fisher_groups.parts(tensors, cands, element, room - fisher_groups.WORKING, head.path, reach)
        mx.clear_cache()
        mx.reset_peak_memory()
        base = mx.get_active_memory()
        sizes: dict[str, int] = {}
        t0 = time.perf_counter()
        scores = fisher_groups.grouped_estimates(model, chunks, tensors, cands, room=room, element=element,
                                                 storage_dtype=storage, seed=0, sizes=sizes, compact=True)
        secs = time.perf_counter() - t0
        peak = mx.get_peak_memory() - base
        gap = 0.0
        if base_scores is None:
            base_scores = scores
        else:
            gap = max(abs(scores[p][c] - v) / max(abs(v), 1e-12) for p, s in base_scores.items() for c, v in s.items())
        print(f"asked {k} part(s): made {len(split)}; peak MLX above the model {peak / 1e6:8.1f} MB; statistics "
              f"at once {sizes['statistics'] / 1e6:7.1f} MB; {secs:6.1f} s; largest relative score gap {gap:.1e}",
              flush=True)


if __name__ == "__main__":
    main()
