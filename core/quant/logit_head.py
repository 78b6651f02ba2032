"""The output head in vocabulary slices: log-normaliser, sampled labels, and both gradients, without ever
holding a full-vocabulary logit (or logit-gradient) array.

The Fisher estimate (estimate.py) needs, per calibration sequence, the gradient of the cross-entropy of
labels *sampled from the model itself*. With a 262,144-token vocabulary a (tokens × vocab) fp32 array is
268 MB per 256 tokens and autograd keeps several; here every array is (tokens × slice) with a slice of
`slice_rows(...)` vocabulary rows:

- pass A: per slice, the logits z = softcap(H Wᵀ); a running logsumexp and a Gumbel-max sample give the
  normaliser and the labels (the same distribution as sampling from the full softmax);
- pass B: dL/dH = Σ_slices (softmax - onehot)·softcap' · W_slice;
- pass C: the head weight's gradient slice by slice, (softmax - onehot)ᵀ H, handed to a callback.

When the whole (tokens × vocab) fp32 array fits in KEEP_BYTES (a 49k vocabulary at 256 tokens: 50 MB), a
`Kept` holder carries each slice from pass to pass: pass A keeps the logits, pass B turns them into
(softmax - onehot)·softcap' and keeps that, pass C multiplies it with H. Three products with the head instead
of five (pass B and C no longer recompute the logits); larger vocabularies recompute them per pass.

The head is found from the model (an `lm_head` Linear, else the tied `embed_tokens`, and a final logit
soft-cap when the model has one); `Head.matches` checks on a real batch that it reproduces the model's
logits, so an architecture with another head (logit scaling...) is refused instead of mis-measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import QuantError

SLICE_BYTES = 64 << 20      # fp32 (tokens × rows) working arrays per slice stay under this
FP32_COPY_BYTES = 256 << 20  # a head whose fp32 copy fits in this is upcast once, not per slice and pass
KEEP_BYTES = 128 << 20      # (tokens × vocab) fp32 logits kept between the passes up to this size


@dataclass
class Head:
    module: Any             # the Linear (lm_head) or the tied Embedding
    path: str               # its quantizable path ("lm_head" or "model.embed_tokens")
    tied: bool
    softcap: float | None
    fp32: Any = field(default=None, repr=False)    # the fp32 copy, when small enough to keep (rows())

    @property
    def weight(self) -> Any:
        return self.module["weight"]

    @property
    def vocab(self) -> int:
        return int(self.weight.shape[0])

    def rows(self, a: int, b: int) -> Any:
        """Vocabulary rows a..b in fp32 (from a copy made once when it is small; else cast per call)."""
        import mlx.core as mx

        w = self.weight
        if w.dtype == mx.float32:
            return w[a:b]
        if w.size * 4 <= FP32_COPY_BYTES:
            if self.fp32 is None:
                self.fp32 = leaf(w.astype(mx.float32))
            return self.fp32[a:b]
        return w[a:b].astype(mx.float32)


def body_of(model: Any) -> Any:
    """The inner model: token ids -> final (normed) hidden state."""
    inner = getattr(model, "model", None)
    if inner is None or not callable(inner):
        raise QuantError("the fast estimate needs a model with an inner `model` (mlx-lm layout)")
    return inner


def find_head(model: Any) -> Head:
    inner = body_of(model)
    softcap = getattr(model, "final_logit_softcapping", None)
    if softcap is None:
        softcap = getattr(getattr(model, "args", None), "final_logit_softcapping", None)
    lm_head = model.get("lm_head") if isinstance(model, dict) else None
    if lm_head is not None and "weight" in lm_head:
        return Head(lm_head, "lm_head", False, softcap)
    embed = inner.get("embed_tokens") if isinstance(inner, dict) else None
    if embed is None or "weight" not in embed:
        raise QuantError("the fast estimate found neither lm_head nor a tied embed_tokens")
    prefix = next((p for p, m in model.named_modules() if m is embed), "model.embed_tokens")
    return Head(embed, prefix, True, softcap)


def slice_rows(tokens: int, vocab: int, limit: int | None = None) -> int:
    limit = SLICE_BYTES if limit is None else limit
    return max(256, min(vocab, limit // max(1, tokens * 4 * 4)))


def _logits(h: Any, w: Any, softcap: float | None) -> tuple[Any, Any]:
    """(capped logits, d capped / d raw) for hidden h (T × D, fp32) and weight rows w."""
    import mlx.core as mx

    raw = h @ (w if w.dtype == mx.float32 else w.astype(mx.float32)).T
    if softcap is None:
        return raw, None
    t = mx.tanh(raw / softcap)
    return t * softcap, 1.0 - t * t


def ranges(vocab: int, rows: int) -> Iterator[tuple[int, int]]:
    for a in range(0, vocab, rows):
        yield a, min(vocab, a + rows)


def leaf(*arrays: Any) -> Any:
    """Evaluated copies with no graph (cutting the chain a tracer would keep); small arrays only."""
    import mlx.core as mx
    import numpy as np

    mx.eval(*arrays)
    out = tuple(mx.array(np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a, copy=True)).astype(a.dtype)
                for a in arrays)
    return out if len(out) > 1 else out[0]


class Kept:
    """Per vocabulary slice, the array the next pass starts from: pass A's capped logits (and softcap'),
    then pass B's d(loss)/d(raw logits). Empty (nothing kept) when tokens × vocab × 4 bytes > KEEP_BYTES."""

    def __init__(self, tokens: int, vocab: int, softcap: float | None = None) -> None:
        self.on = tokens * vocab * 4 * (1 if softcap is None else 2) <= KEEP_BYTES   # softcap' kept beside
        self.slices: dict[int, Any] = {}
        self.grads = False           # True once pass B replaced the logits by their gradient

    def put(self, a: int, *arrays: Any) -> None:
        if self.on:
            self.slices[a] = arrays

    def get(self, a: int) -> Any:
        return self.slices.get(a)


def normaliser_and_labels(head: Head, h: Any, key: Any, rows: int, kept: Kept | None = None) -> tuple[Any, Any]:
    """Pass A: per token, logsumexp of the logits and a label sampled from softmax(logits)."""
    import mlx.core as mx

    lse = best = label = None
    for a, b in ranges(head.vocab, rows):
        z, dcap = _logits(h, head.rows(a, b), head.softcap)
        key, sub = mx.random.split(key)
        noisy = z + mx.random.gumbel(z.shape, key=sub)
        top = noisy.max(axis=-1)
        arg = noisy.argmax(axis=-1).astype(mx.int32) + a
        part = mx.logsumexp(z, axis=-1)
        if lse is None:
            lse, best, label = part, top, arg
        else:
            lse = mx.logaddexp(lse, part)
            take = top > best
            best, label = mx.where(take, top, best), mx.where(take, arg, label)
        if kept is not None and kept.on:
            lse, best, label, key, *zs = leaf(lse, best, label, key, z, *(() if dcap is None else (dcap,)))
            kept.put(a, *zs)
        else:
            lse, best, label, key = leaf(lse, best, label, key)
    return lse, label


def _dlogits(head: Head, h: Any, a: int, b: int, lse: Any, labels: Any, kept: Kept | None = None) -> Any:
    """d(sum of cross-entropies) / d(raw logits) for vocabulary rows a..b: (T × (b-a)); from pass A's
    kept logits when `kept` holds them."""
    import mlx.core as mx

    held = kept.get(a) if kept is not None else None
    if held is not None:
        z, dcap = held if len(held) == 2 else (held[0], None)
    else:
        z, dcap = _logits(h, head.rows(a, b), head.softcap)
    g = mx.exp(z - lse[:, None])
    onehot = (labels[:, None] == mx.arange(a, b)[None, :]).astype(g.dtype)
    g = g - onehot
    return g if dcap is None else g * dcap


def hidden_grad(head: Head, h: Any, lse: Any, labels: Any, rows: int, kept: Kept | None = None) -> Any:
    """Pass B: dL/dh (T × D, fp32). With `kept`, each slice's d/d(raw logits) replaces its logits there."""
    import mlx.core as mx

    out = mx.zeros(h.shape, dtype=mx.float32)
    for a, b in ranges(head.vocab, rows):
        g = _dlogits(head, h, a, b, lse, labels, kept)
        if kept is not None and kept.on:
            out, g = leaf(out + g @ head.rows(a, b), g)
            kept.slices[a] = (g,)
            kept.grads = True
        else:
            out = leaf(out + g @ head.rows(a, b))
    return out


def weight_grads(head: Head, h: Any, lse: Any, labels: Any, rows: int,
                 each: Callable[[int, int, Any], None], kept: Kept | None = None) -> None:
    """Pass C: `each(a, b, G)` with G = dL/dW[a:b] (fp32), one vocabulary slice at a time (from pass B's
    kept d/d(raw logits) when `kept` holds them)."""
    for a, b in ranges(head.vocab, rows):
        held = kept.get(a) if kept is not None and kept.grads else None
        g = held[0] if held is not None else _dlogits(head, h, a, b, lse, labels)
        if kept is not None:
            kept.slices.pop(a, None)
        each(a, b, g.T @ h)


def head_logits(head: Head, h: Any) -> Any:
    """Full logits of hidden h (only for the consistency check on a short batch)."""
    return _logits(h, head.weight, head.softcap)[0]


def check_matches(model: Any, head: Head, x: Any) -> None:
    """Refuse a model whose logits are not softcap(body(x) Wᵀ) (e.g. a logit scale we do not model)."""
    import mlx.core as mx

    short = x[:, : min(8, x.shape[1])]
    want = model(short).astype(mx.float32)
    hidden = body_of(model)(short)
    tol = 1e-3 if hidden.dtype == mx.float32 else 3e-2
    got = head_logits(head, hidden.astype(mx.float32).reshape(-1, hidden.shape[-1])).reshape(want.shape)
    scale = float(mx.abs(want).max().item()) or 1.0
    err = float(mx.abs(got - want).max().item())
    if err > tol * scale + 1e-4:
        raise QuantError(f"the fast estimate cannot reproduce this model's output head "
                         f"(max logit difference {err:.3g}): measure it with --mode exact")
