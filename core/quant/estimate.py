"""Fast sensitivity estimate from the Fisher information: statistics gathered once, candidates scored once.

For a small weight change ΔW, the KL between the model's next-token distributions before and after is, to
second order, ½ ΔWᵀ F ΔW, with F the Fisher information of the model's own predictions. One backward pass
per calibration sequence s, with labels *sampled from the model itself*, gives a sequence gradient G_s
whose outer product estimates F. Two estimates of ΔWᵀ F ΔW are averaged:

- diagonal:  Σ_ij D_ij ΔW_ij²              with D = Σ_s G_s²  (F's diagonal)
- grouped:   Σ_g m_g² S_g + Σ_ij D_ij r_ij²  with S_g = Σ_s (Σ_{ij∈g} G_s,ij)², m_g the mean of ΔW over
  quantization group g and r = ΔW - m_g: F kept block-diagonal per group (the correlated part of a
  group's error is its shared offset, which the diagonal misses; e.g. a 2-bit group's rounding offset).

    ΔKL_est = ½ · ½ (diagonal + grouped) / tokens      (nats per token)

Cost and memory (the point of this form): per sequence, one forward of the body, the head in vocabulary
slices (logit_head.py), and one backward; the statistics D (one array per weight, in the compute dtype)
and S (params / group size per group size asked; bf16 for a bf16 model, else fp32) are *accumulated* across sequences. Only then is each
candidate's quantization error computed, ONCE per tensor, a row slice at a time. So work is
sequences × model + candidates × model (not their product), and memory is the model, its Linear
gradients for one sequence, D and S, and one slice of ΔW. Embeddings are measured on the rows the
calibration text uses (their gradient arrives through a zero "tap" added to the lookup, never as a dense
vocabulary × hidden array); a head's statistics are kept per vocabulary slice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..accel.release import bounded_cache
from ..errors import QuantError
from . import fisher_blocks, fisher_tables, host_math, logit_head, logit_head_np, work
from .candidates import Candidate
from .fisher_scoring import score_candidates
from .hessians import FisherHessians
from .reference import PASSES
from .tensors import QTensor

CACHE_BYTES = 64 << 20           # MLX buffer cache during the pass (at 256 MB the 262k-vocab pass peaked 0.11 GiB higher)


class _Stats:
    """D and S_g for one weight (or for the rows of it that the calibration reaches)."""

    def __init__(self, rows: int, cols: int, groups: list[int], dtype: Any):
        import mlx.core as mx

        self.d = mx.zeros((rows, cols), dtype=dtype)
        self.s = {g: mx.zeros((rows, cols // g), dtype=dtype) for g in groups}
        self.q: list[Any] = []          # per sequence: ⟨G_s, W⟩ per row (fp32)
        self.rows = rows

    def add(self, grad: Any, weight: Any, at: Any = None) -> None:
        """Add one sequence's gradient (rows × cols) of `weight` (the same rows); `at`: the rows of the
        statistics it lands on (None: all)."""
        import mlx.core as mx

        groups = tuple(self.s)
        if at is None:
            q, self.d, *sums = _add_kernel(groups)(grad, weight, self.d, *self.s.values())
            self.q.append(q)
            self.s = dict(zip(groups, sums, strict=True))
            return
        q, sq, *squares = _terms(groups, grad, weight, self.d.dtype)
        self.q.append(mx.zeros((self.rows,), dtype=mx.float32).at[at].add(q))
        self.d = self.d.at[at].add(sq)
        for g, gs2 in zip(groups, squares, strict=True):
            self.s[g] = self.s[g].at[at].add(gs2)

    def arrays(self) -> list[Any]:
        return [self.d, *self.s.values(), *self.q]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())


def _terms(groups: tuple[int, ...], grad: Any, weight: Any, dtype: Any) -> list[Any]:
    """⟨G, W⟩ per row (fp32), G², and per group size the squared group sums (the larger group sizes
    summed from the smallest one's sums when they are multiples of it: one pass over G, not one per size)."""
    import mlx.core as mx

    q = (grad.astype(mx.float32) * weight.astype(mx.float32)).sum(-1)
    grad = grad.astype(dtype)
    rows = grad.shape[0]
    base = grad.reshape(rows, -1, groups[0]).sum(-1) if groups else None
    squares = []
    for g in groups:
        gs = base.reshape(rows, -1, g // groups[0]).sum(-1) if g % groups[0] == 0 else \
            grad.reshape(rows, -1, g).sum(-1)
        squares.append(gs * gs)
    return [q, grad * grad, *squares]


_ADD_KERNELS: dict[tuple[int, ...], Any] = {}


def _add_kernel(groups: tuple[int, ...]) -> Any:
    """Compiled: (G, W, D, *S) -> (⟨G, W⟩ per row, D + G², *(S_g + group sums²)): one fused update."""
    import mlx.core as mx

    if groups not in _ADD_KERNELS:
        def update(grad: Any, weight: Any, d: Any, *s: Any) -> list[Any]:
            q, sq, *squares = _terms(groups, grad, weight, d.dtype)
            return [q, d + sq, *(a + b for a, b in zip(s, squares, strict=True))]

        _ADD_KERNELS[groups] = mx.compile(update)
    return _ADD_KERNELS[groups]


def _rows2d(w: Any) -> Any:
    return w.reshape(-1, w.shape[-1])


def _whole_model(body: Any, x: Any, linears: list[QTensor], taps: dict[str, fisher_tables.EmbedTap], originals: dict[str, Any],
                 head_grad: Callable[[Any], Any], fold: Callable[[str, Any], None]) -> dict[str, Any]:
    """One sequence's gradients by `mx.grad` of the whole model: `fold(path, gradient)` per Linear, from the
    last block down (each evaluated and dropped in turn, so the backward never holds every gradient at once);
    returns the embedding taps' gradients."""
    import mlx.core as mx

    seq = x.shape[-1]

    @mx.custom_function
    def head_loss(hidden: Any) -> Any:
        return (hidden * 0).sum()

    @head_loss.vjp
    def head_loss_vjp(hidden: Any, cotangent: Any, output: Any) -> Any:
        return head_grad(hidden)

    def loss(*arrays: Any) -> Any:
        if only_head:          # a zero after the body: the backward starts (the head's statistics) and stops there
            return head_loss(body(x) + arrays[0])
        for t, a in zip(linears, arrays, strict=False):
            t.module["weight"] = a
        for tap, a in zip(taps.values(), arrays[len(linears):], strict=True):
            tap.offset = a
        return head_loss(body(x))

    primals = [originals[t.path] for t in linears] + \
        [mx.zeros((1, seq, tap.inner["weight"].shape[-1]), dtype=tap.inner["weight"].dtype) for tap in taps.values()]
    only_head = not primals             # a part of fisher_groups.py with the untied head alone
    if only_head:
        primals = [mx.zeros((1,), dtype=mx.float32)]
    try:
        flat = mx.grad(loss, argnums=list(range(len(primals))))(*primals)
        flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
    finally:
        for t in linears:
            t.module["weight"] = originals[t.path]
        for tap in taps.values():
            tap.offset = None
    if only_head:
        return {}
    weights = dict(zip([t.path for t in linears], flat[:len(linears)], strict=True))
    out = dict(zip(taps, flat[len(linears):], strict=True))
    del flat
    for t in sorted(linears, key=lambda t: -1 if t.layer is None else t.layer, reverse=True):
        fold(t.path, weights.pop(t.path))
    return out


def fisher_estimates(model: Any, chunks: np.ndarray, tensors: list[QTensor], candidates: list[Candidate],
                     **options: Any) -> dict[str, dict[str, float]]:
    """Per tensor path, per fitting candidate key: the ΔKL estimate in nats per token. Options: storage_dtype,
    seed, check, progress(done, total, message, work: the Progress data of the steps' work units, work.py),
    sizes (receives the statistics' bytes), passes, numpy_head (the head's element-wise work in NumPy,
    logit_head_np.py; default: `host_math.active()`, on MLX's CPU backend), by_blocks (the backward one block at
    a time with the model's SiLU and softmax in NumPy, fisher_blocks.py: one block's intermediates in memory
    instead of the whole model's; off by default: on SmolLM2 it was no faster, docs/benchmarks/
    quantize_speed_cpu.md session 8; a body whose blocks are no plain chain keeps the whole-model `mx.grad`, where
    the SiLU and softmax stay in MLX, as host_activations.py says why), hessians (a `FisherHessians` that the
    block-wise forward fills with GPTQ's H, for `gptq.Rounding.collected`; left invalid on the whole-model path),
    compact (swap the looked-up tables measured for the rows the calibration reaches: nothing may read their other
    rows afterwards, fisher_tables.py), compacted (tables an earlier pass compacted, with their maps)."""
    # freed buffers go back to the system instead of MLX's cache: the pass makes many short-lived arrays
    # of many sizes, and a cache keeping the largest of each would hold several model-sized copies
    with bounded_cache(CACHE_BYTES):
        return _fisher_estimates(model, chunks, tensors, candidates, **options)


def _fisher_estimates(model: Any, chunks: np.ndarray, tensors: list[QTensor], candidates: list[Candidate], *,
                      storage_dtype: Any = None, seed: int = 0,
                      check: Callable[[], None] | None = None,
                      progress: Callable[[int, int, str, dict[str, float]], None] | None = None,
                      sizes: dict[str, int] | None = None,
                      passes: list[int] | None = None,
                      numpy_head: bool | None = None, by_blocks: bool | None = None,
                      hessians: FisherHessians | None = None, compact: bool = False,
                      compacted: fisher_tables.Compacted | None = None) -> dict[str, dict[str, float]]:
    import mlx.core as mx

    check = check or (lambda: None)
    passes = [] if passes is None else passes       # one entry per forward+backward pass
    fits = {t.path: [c for c in candidates if c.fits(t.shape)] for t in tensors}
    groups = {t.path: sorted({c.group_size for c in fits[t.path]}) for t in tensors}
    head = logit_head.find_head(model)
    body = logit_head.body_of(model)
    on_cpu = host_math.active()
    numpy_head = on_cpu if numpy_head is None else numpy_head
    n, seq = chunks.shape
    rows_per_slice = logit_head.slice_rows(seq, head.vocab)
    calib_rows = np.unique(chunks)
    embeds = [t for t in tensors if fisher_tables.is_table(t)]
    linears = [t for t in tensors if t not in embeds and t.path != head.path]
    head_t = next((t for t in tensors if t.path == head.path), None)
    blocks: list[list[str]] | None = None
    if by_blocks:
        try:
            blocks = fisher_blocks.blocks_of(body, [t.path for t in linears])
        except fisher_blocks.Unsupported:
            blocks = None
    modules = {t.path: t.module for t in linears}
    collect = hessians is not None and blocks is not None
    if collect:
        hessians.head = not head.tied       # an untied lm_head is rounded by GPTQ against the final hidden state
    if hessians is not None and not collect:
        hessians.discard()

    def acc_dtype(t: QTensor) -> Any:
        # bf16 (fp32's range) when the model is stored in bf16: half the bytes of fp32 statistics; fp16
        # would underflow on squared gradients, so anything else accumulates in fp32
        stored = storage_dtype if storage_dtype is not None else t.module["weight"].dtype
        return mx.bfloat16 if stored == mx.bfloat16 else mx.float32

    stats = {t.path: _Stats(t.params // t.shape[-1], t.shape[-1], groups[t.path], acc_dtype(t)) for t in linears}
    for t in embeds:
        if t.path != head.path:
            stats[t.path] = _Stats(len(calib_rows), t.shape[-1], groups[t.path], acc_dtype(t))
    head_stats: list[_Stats] = []
    if head_t is not None:
        head_stats = [_Stats(b - a, head_t.shape[-1], groups[head_t.path], acc_dtype(head_t))
                      for a, b in logit_head.ranges(head.vocab, rows_per_slice)]
    mx.eval([a for s in [*stats.values(), *head_stats] for a in s.arrays()])

    compacted = dict(compacted or {})
    if compact:
        compacted.update(fisher_tables.compact_tables(
            [t for t in embeds if fisher_tables.only_looked_up(t, head.path) and t.path not in compacted],
            calib_rows))
    taps, undo = fisher_tables.install(model, embeds, compacted)
    originals = {t.path: t.module["weight"] for t in linears}
    total = n + len(tensors)
    scored_elements = [len(calib_rows) * t.shape[-1] if t in embeds and t.path != head.path else t.params
                       for t in tensors]
    costs = work.fisher_steps(sum(t.params for t in tensors), [seq] * n,
                              [(e, len(fits[t.path])) for e, t in zip(scored_elements, tensors, strict=True)])
    tally = work.Tally(sum(costs))
    key = mx.random.key(seed)
    try:
        first = mx.array(chunks[:1])
        for tap in taps.values():
            tap.offset = None
        logit_head.check_matches(model, head, first)
        if progress is not None:      # the start: the first sequence (compiling) is left out of the ETA's rate
            progress(0, total, f"fisher: sequence 1/{n}", tally.add(0.0))
        for i in range(n):
            check()
            x = mx.array(chunks[i:i + 1])
            key, sub = mx.random.split(key)
            seen: dict[str, Any] = {}
            kept = logit_head.Kept(seq, head.vocab, head.softcap)

            def head_grad(hidden: Any, sub: Any = sub, seen: dict[str, Any] = seen, kept: logit_head.Kept = kept) -> Any:
                # leaves (no graph): inside the transformation an evaluated array keeps its graph
                h2 = logit_head.leaf(mx.stop_gradient(hidden).reshape(-1, hidden.shape[-1]).astype(mx.float32))
                if numpy_head:       # MLX's CPU exp is scalar: the element-wise head work goes to NumPy
                    lse = logit_head_np.normaliser(head, h2, rows_per_slice, kept)
                    dh, labels = logit_head_np.hidden_grad(head, h2, lse, logit_head_np.rng_from_key(sub),
                                                           rows_per_slice, kept)
                else:
                    lse, labels = logit_head.normaliser_and_labels(head, h2, sub, rows_per_slice, kept)
                    dh = logit_head.hidden_grad(head, h2, lse, labels, rows_per_slice, kept)
                seen.update(h2=h2, lse=lse, labels=labels)
                return logit_head.leaf(dh.reshape(hidden.shape).astype(hidden.dtype))

            def fold(path: str, g: Any) -> None:
                if on_cpu:    # MLX's weight gradients are transposed views, and the compiled update (and its
                    g = mx.contiguous(g)  # bf16 group sums) ran 3x slower on them than on a copy
                stats[path].add(_rows2d(g), _rows2d(originals[path]))
                mx.eval(stats[path].arrays())

            tap_grads = None
            if blocks is not None:
                try:
                    tap_grads = fisher_blocks.sequence(model, body, x, blocks, modules, originals, taps, head_grad,
                                                       fold, hessians if collect else None)
                except fisher_blocks.Unsupported:
                    if i:
                        raise
                    blocks = None
            if tap_grads is None:
                if collect:
                    hessians.discard()
                    collect = False
                tap_grads = _whole_model(body, x, linears, taps, originals, head_grad, fold)
            passes.append(1)
            PASSES.n += 1
            h2, lse, labels = seen["h2"], seen["lse"], seen["labels"]
            lookup: dict[str, tuple[np.ndarray, Any]] = {}
            for p, tap in taps.items():
                ids = np.array(tap.seen).reshape(-1)
                shapes = {p: (1, seq, tap.inner["weight"].shape[-1])}
                urows, inverse = np.unique(ids, return_inverse=True)
                g = tap_grad = tap_grads[p].reshape(-1, shapes[p][-1]).astype(mx.float32)
                g = mx.zeros((len(urows), tap_grad.shape[-1]), dtype=mx.float32).at[mx.array(inverse)].add(g)
                if p == head.path:
                    lookup[p] = (urows, g)
                    continue
                pos = np.searchsorted(calib_rows, urows)
                if np.any(pos >= len(calib_rows)) or np.any(calib_rows[np.minimum(pos, len(calib_rows) - 1)] != urows):
                    raise QuantError(f"{p} is looked up with ids outside the calibration tokens: "
                                     "measure it with --mode exact")
                rows = mx.array(pos if tap.remap is not None else urows)     # compacted: row i is calib_rows[i]
                stats[p].add(g, tap.inner["weight"][rows], mx.array(pos))
                mx.eval(stats[p].arrays())
            if head_t is not None:
                urows, g_rows = lookup.get(head.path, (np.zeros(0, dtype=np.int64), None))

                def each(a: int, b: int, grad: Any, urows: np.ndarray = urows, g_rows: Any = g_rows) -> None:
                    k = a // rows_per_slice
                    if g_rows is not None:
                        sel = np.nonzero((urows >= a) & (urows < b))[0]
                        if len(sel):
                            grad = grad.at[mx.array(urows[sel] - a)].add(g_rows[mx.array(sel)])
                    head_stats[k].add(grad, head.weight[a:b])
                    mx.eval(head_stats[k].arrays())

                (logit_head_np if numpy_head else logit_head).weight_grads(head, h2, lse, labels, rows_per_slice,
                                                                           each, kept)
            del tap_grads
            if progress is not None:
                progress(i + 1, total, f"fisher: sequence {i + 1}/{n}", tally.add(costs[i]))
    finally:
        fisher_tables.restore(model, undo)
    if collect:
        hessians.spill()        # out of memory before the scoring (whose temporaries peak the phase)
    if sizes is not None:
        sizes["statistics"] = sum(s.nbytes() for s in [*stats.values(), *head_stats])
    tokens = int(chunks.size)
    out: dict[str, dict[str, float]] = {}
    for j, t in enumerate(tensors):
        check()
        w = _rows2d(t.module["weight"])
        if t.path == head.path:
            parts = [(w[a:b], s) for (a, b), s in zip(logit_head.ranges(head.vocab, rows_per_slice), head_stats,
                                                      strict=True)]
        elif t in embeds:
            parts = [(w if taps[t.path].remap is not None else w[mx.array(calib_rows)], stats[t.path])]
        else:
            parts = [(w, stats[t.path])]
        scored = score_candidates(parts, fits[t.path], storage_dtype, check)
        out[t.path] = {c.key: 0.25 * scored[c.key] / tokens for c in fits[t.path]}
        if progress is not None:
            progress(n + j + 1, total, f"scoring {t.path}", tally.add(costs[n + j]))
    return out
