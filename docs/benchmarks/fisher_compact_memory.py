"""The Fisher pass's peak MLX memory with and without compacted lookup tables (estimate.py's `compact`), same run.

A gemma4_text model of E2B's widths (hidden 1536, 262,144-token vocabulary, 256-wide per-layer inputs) with few
layers and random weights, loaded as the sensitivity phase loads it (`SensitivityRun.load(fisher_only=True)`:
fp32 Linears on a CPU, the stored dtype on a GPU). Each form runs in its own process; printed: MLX's peak memory
of the pass above the loaded model, the model's own, and the pass's time.

    python docs/benchmarks/fisher_compact_memory.py [--layers 4] [--samples 4] [--vocab 262144] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def child(src: Path, compact: bool, samples: int) -> dict:
    import mlx.core as mx
    import numpy as np
    from temper.core.engine import Engine
    from temper.core.quant import estimate
    from temper.core.quant.candidates import AFFINE_BITS, grid
    from temper.core.quant.sensitivity_run import SensitivityRun
    from temper.core.quant.tensors import quantizable

    def run(ctx):
        loader = SensitivityRun.__new__(SensitivityRun)
        loader.path = src
        model, storage = SensitivityRun.load(loader, fisher_only=True)
        mx.synchronize()
        loaded = mx.get_active_memory()
        mx.reset_peak_memory()
        vocab = int(loader.vocab)
        chunks = np.random.default_rng(0).integers(0, vocab, (samples, 256)).astype(np.int32)
        t0 = time.perf_counter()
        estimate.fisher_estimates(model, chunks, quantizable(model), grid(AFFINE_BITS, (32, 64, 128)),
                                  storage_dtype=storage, compact=compact)
        return {"loaded": loaded, "peak_above": mx.get_peak_memory() - loaded, "seconds": time.perf_counter() - t0}

    engine = Engine()
    try:
        return engine.run(run)
    finally:
        engine.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=262144, help="a smaller vocabulary for a CPU (its bf16 head has no BLAS)")
    ap.add_argument("--dtype", default="bfloat16", help="stored dtype (float32: BLAS products on a CPU)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fisher_compact_memory"))
    ap.add_argument("--child", nargs=3, metavar=("SRC", "COMPACT", "SAMPLES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1] == "1", int(args.child[2]))))
        return 0
    from mlx_lm.models.gemma4_text import ModelArgs
    from temper.core.library.synthetic import save_random

    base = ModelArgs(model_type="gemma4_text")
    layers = args.layers
    config = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "num_hidden_layers": layers,
              "layer_types": base.layer_types[:layers], "num_kv_shared_layers": 0,
              "max_position_embeddings": 4096, "vocab_size": args.vocab, "vocab_size_per_layer_input": args.vocab}
    src = args.work / f"e2b-widths-{layers}-{args.vocab}-{args.dtype}"
    if not (src / "config.json").exists():
        save_random(src, config, dtype=args.dtype)
    table = args.vocab * layers * base.hidden_size_per_layer_input
    print(f"gemma4_text, E2B widths, {layers} layers, vocabulary {args.vocab}, {args.dtype}: per-layer input table "
          f"{table / 1e6:.0f}M parameters; {args.samples} sequences of 256 tokens", flush=True)
    rows = {}
    for compact in (False, True):
        out = subprocess.run([sys.executable, __file__, "--child", str(src), "1" if compact else "0",
                              str(args.samples)], capture_output=True, text=True, check=True)
        rows[compact] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[compact]
        print(f"  compact={compact!s:5}  model {r['loaded'] / 1e9:.2f} GB, pass peak above it "
              f"{r['peak_above'] / 1e9:.2f} GB, model + pass {(r['loaded'] + r['peak_above']) / 1e9:.2f} GB, "
              f"{r['seconds']:.1f} s", flush=True)
    whole = {c: rows[c]["loaded"] + rows[c]["peak_above"] for c in rows}
    print(f"peak (model + pass): {whole[False] / 1e9:.2f} -> {whole[True] / 1e9:.2f} GB "
          f"({(whole[False] - whole[True]) / 1e9:.2f} GB less, {whole[True] / whole[False]:.2f}x)")
    return 0


if __name__ == "__main__":
    from temper.core.exit import exit_with

    exit_with(main)
