"""Scoring candidates from the Fisher statistics (estimate.py): per tensor, each fitting candidate's
diagonal + grouped quadratic form ΔWᵀ F ΔW, with ΔW computed a row slice at a time.

Every candidate of one group size is scored in one compiled call: the row slice is read once, the
weight's casts, D's and the row norms are computed once, and one min/max pass serves every width, with an
element-wise affine fake quantization (`_affine`) that gives mx.quantize → mx.dequantize's values exactly.
k candidates run on 1/k of the rows, so the working set stays one slice's (as for one candidate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import host_math
from .candidates import Candidate
from .fakequant import fake_quantize

ROW_SLICE_BYTES = 64 << 20       # ΔW is computed this many fp32 bytes of rows at a time

_KERNELS: dict[tuple[Any, ...], Any] = {}


def _kernel(cands: tuple[Candidate, ...], storage_dtype: Any) -> Any:
    """Compiled: (weight rows, D rows, S rows of the candidates' group size) -> per candidate (diagonal +
    grouped terms, per-row α). All candidates of one group size in one call: the weight's casts, D's and the
    row norms are computed once for them, and the row slice is read once."""
    import mlx.core as mx

    key = (tuple(c.key for c in cands), storage_dtype)
    if key not in _KERNELS:
        group = cands[0].group_size

        def terms(ws: Any, dd: Any, sg: Any) -> list[Any]:
            ref = ws.astype(storage_dtype) if storage_dtype is not None else ws
            wf = ref.astype(mx.float32)
            norm = mx.maximum((wf * wf).sum(-1), 1e-30)
            dd, sg = dd.astype(mx.float32), sg.astype(mx.float32)
            wg = wf.reshape(wf.shape[0], -1, group)
            lo, hi = wg.min(-1, keepdims=True), wg.max(-1, keepdims=True)     # shared by every width
            out = []
            for c in cands:
                if c.mode == "affine":
                    d = (_affine(wg, lo, hi, c.bits, ref.dtype) - wg).reshape(wf.shape)
                else:
                    d = fake_quantize(ref, c).astype(mx.float32) - wf
                alpha = (d * wf).sum(-1) / norm
                d2 = d - alpha[:, None] * wf
                m = d2.reshape(d2.shape[0], -1, group).mean(-1)
                r = d2 - mx.repeat(m, group, axis=-1)
                out += [(dd * (d * d + r * r)).sum() + (sg * m * m).sum(), alpha]
            return out

        _KERNELS[key] = mx.compile(terms)
    return _KERNELS[key]


def _affine(wg: Any, lo: Any, hi: Any, bits: int, dtype: Any) -> Any:
    """Affine fake quantization of groups `wg` (rows, groups, gs; fp32 holding `dtype` values) from their
    min and max, as `fake_quantize` gives it (mx.quantize's grid and integers, scale and bias stored in
    `dtype`, mx.dequantize's products and sums rounded to `dtype`: the same values, checked in
    tests/core/test_estimate_kernel.py). Element-wise only (no packing), so it fuses into the scoring
    kernel, and every width of a group size shares the min/max pass."""
    import mlx.core as mx

    nb = float(2 ** bits - 1)
    s = mx.maximum((hi - lo) / nb, 1e-7)
    low = mx.abs(lo) > mx.abs(hi)
    s = mx.where(low, s, -s)
    edge = mx.where(low, lo, hi)
    q0 = mx.round(edge / s)
    nonzero = q0 != 0
    s = mx.where(nonzero, edge / mx.where(nonzero, q0, 1.0), s)
    b = mx.where(nonzero, edge, 0.0)
    q = mx.clip(mx.round((wg - b) / s), 0.0, nb)          # on the unrounded grid, as mx.quantize does
    s, b = s.astype(dtype), b.astype(dtype)                # stored
    return ((s * q.astype(dtype)).astype(dtype) + b).astype(dtype).astype(mx.float32)   # mx.dequantize's order


def score_candidates(parts: list[tuple[Any, Any]], cands: list[Candidate], storage_dtype: Any,
                     check: Callable[[], None], numpy_path: bool | None = None) -> dict[str, float]:
    """Per candidate, diagonal + structured; ΔW computed a row slice at a time, every candidate of a group
    size from one read of the slice (and one min/max pass over it). `numpy_path`: affine candidates scored in
    NumPy on a thread pool (fisher_scoring_np.py; default: `host_math.active()`, on MLX's CPU backend)."""
    import mlx.core as mx

    by_group: dict[int, list[Candidate]] = {}
    for c in cands:
        by_group.setdefault(c.group_size, []).append(c)
    totals: dict[str, Any] = {}
    numpy_path = host_math.active() if numpy_path is None else numpy_path
    for group, members in by_group.items():
        if numpy_path and all(c.mode == "affine" for c in members):     # every core, vectorised (the module's doc)
            from .fisher_scoring_np import score_affine

            for c, v in zip(members, score_affine(parts, group, members, storage_dtype, check), strict=True):
                totals[c.key] = mx.array(v)
            continue
        kernel = _kernel(tuple(members), storage_dtype)
        total = [mx.array(0.0) for _ in members]
        proj: list[Any] = [None] * len(members)
        for w, st in parts:
            # k candidates at once on 1/k of the rows: the working set stays one slice's, as for one candidate
            rows = max(1, min(ROW_SLICE_BYTES // (4 * w.shape[-1]), w.shape[0]) // len(members))
            alphas: list[list[Any]] = [[] for _ in members]
            for a in range(0, w.shape[0], rows):
                check()
                got = kernel(w[a:a + rows], st.d[a:a + rows], st.s[group][a:a + rows])
                for k in range(len(members)):
                    total[k] = total[k] + got[2 * k]
                    alphas[k].append(got[2 * k + 1])
                mx.eval(total, [x[-1] for x in alphas])
            q = mx.stack(st.q)                      # sequences × rows
            for k in range(len(members)):
                part = q @ mx.concatenate(alphas[k])
                proj[k] = part if proj[k] is None else proj[k] + part
        for k, c in enumerate(members):
            if proj[k] is not None:
                total[k] = total[k] + (proj[k] * proj[k]).sum()
            totals[c.key] = total[k]
    mx.eval(list(totals.values()))
    return {k: float(v.item()) for k, v in totals.items()}
