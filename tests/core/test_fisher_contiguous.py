"""On MLX's CPU backend the Fisher pass copies each weight gradient (a transposed view) to contiguous memory
before folding it into the statistics: a layout change only, so the estimates are the very same numbers."""

from __future__ import annotations

import numpy as np


def test_contiguous_gradients_give_identical_estimates(engine, trained_tiny, monkeypatch):
    import mlx.core as mx
    from temper.core.engine.loader import load
    from temper.core.quant import estimate, host_math
    from temper.core.quant.calibration import calibration_set
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.tensors import quantizable

    copies = []
    contiguous = mx.contiguous
    monkeypatch.setattr(host_math, "FORCE", True)             # the CPU forms (as on MLX's CPU backend)

    def run(ctx):
        lm = load(trained_tiny)
        lm.model.set_dtype(mx.float32)
        chunks = calibration_set(lm.tokenizer, samples=2, seq_len=32).chunks
        tensors = quantizable(lm.model)
        out = {}
        for copied in (False, True):       # without the copy: mx.contiguous hands the view back as it is
            monkeypatch.setattr(mx, "contiguous", lambda a, *k, copied=copied, **kw: copies.append(a.shape) or (
                contiguous(a, *k, **kw) if copied else a))
            before = len(copies)
            est = estimate.fisher_estimates(lm.model, chunks, tensors, [Candidate(2, 64), Candidate(4, 32)],
                                            numpy_head=True, seed=1, storage_dtype=mx.bfloat16)
            out[copied] = (est, len(copies) - before)
        return out, len([t for t in tensors if t.path != "lm_head" and "embed" not in t.path])

    out, linears = engine.run(run)
    assert out[False][1] == out[True][1] == 2 * linears            # every Linear gradient of both sequences
    assert out[True][0] == out[False][0]                           # bit for bit
    assert all(np.isfinite(v) and v > 0 for row in out[True][0].values() for v in row.values())
