"""Helpers for the quantization tests: held-out token chunks and an exact per-tensor score table."""

from __future__ import annotations

from pathlib import Path

HELD_OUT = """The lighthouse keeper wrote down the weather every morning: wind from the west, light rain,
visibility four miles. def merge(a, b):\n    return sorted(a + b)\nTwelve apples cost three euros;
how much do twenty apples cost? Five euros. {"tool": "search", "arguments": {"query": "tide tables"}}
La mer était calme ce matin-là, et les bateaux rentraient au port avant midi. The committee met again
on Thursday and agreed to postpone the vote until the budget figures had been checked twice."""


def chunks_for(path: Path, *, length: int = 48, count: int = 3) -> list[list[int]]:
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.evaluate import text_chunks

    tok = load_tokenizer(Path(path))
    return text_chunks(tok, HELD_OUT * 3, length=length, count=count)


def scored_table(ctx, path: Path, candidates, *, length: int = 48, count: int = 2):
    """The model's inventory filled with exact ΔKL scores from the real sensitivity pass (engine thread only),
    calibrated on `count` x `length` chunks of HELD_OUT, as `job.run_phases` merges them."""
    import numpy as np
    from temper.core.quant.calibration import TokenSet
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.job import merge_scores
    from temper.core.quant.sensitivity import run_sensitivity

    calib = TokenSet("held-out", "calibration", np.array(chunks_for(path, length=length, count=count), np.int32))
    table = run_sensitivity(ctx, path, list(candidates), calib, mode="exact")
    return merge_scores(load_inventory(Path(path)), table)


def gptq_problem(rows: int, cols: int, seed: int):
    """A weight and an H = xᵀx of activations with uneven scales and one dead input (column 5)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * rng.uniform(0.2, 2.0, (rows, 1))).astype(np.float32)
    x = rng.standard_normal((4 * cols, cols)).astype(np.float32) * rng.uniform(0.1, 3.0, cols).astype(np.float32)
    x[:, 5] = 0.0                                          # a dead input column
    return w, (x.T @ x).astype(np.float32)


def gptq_output_error(w, h, q, s, b, group_size):
    """Σ dᵀHd over rows of the dequantized weight's error d."""
    import numpy as np

    rows, cols = w.shape
    deq = (q.reshape(rows, cols // group_size, group_size) * s[..., None] + b[..., None]).reshape(rows, cols)
    d = deq - w
    return float(np.einsum("rc,cd,rd->", d, h, d))


def gptq_rounded_layers(path, plan):
    """`round_with_gptq` on a fresh copy of the model at `path` (two calibration chunks; the caller's monkeypatches
    choose the form): its blocks' parameters as NumPy (packed words as uint32, the rest as float32)."""
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model
    from temper.core.quant import gptq as gptq_module
    from test_gptq import calib_chunks

    model, _ = load_model(path, lazy=True)
    gptq_module.round_with_gptq(model, plan, calib_chunks(path, count=2), gptq_module.Rounding(),
                                on_tensor=lambda _p: None)
    return {k: np.array(v if v.dtype == mx.uint32 else v.astype(mx.float32))
            for k, v in tree_flatten(model.parameters()) if "layers" in k}
