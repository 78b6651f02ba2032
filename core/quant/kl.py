"""KL(reference || current) of next-token distributions over calibration chunks.

The reference log-probs are computed once and kept: in full when they fit `budget_bytes` (tiny and
small vocabularies), else as each position's top-k log-probs plus the remaining tail mass. The top-k
form measures KL between the two distributions with the tail collapsed into one outcome, which is a
lower bound on the full KL (and very close when the top-k hold nearly all the mass); the table's meta
says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TOPK = 256


def forward(model: Any, x: Any) -> Any:
    """One forward pass (fp32 logits). Every pass of the sensitivity code goes through here."""
    import mlx.core as mx

    return model(x).astype(mx.float32)


def batch_size(samples: int, seq_len: int, vocab: int, limit_bytes: int = 256 << 20) -> int:
    """Chunks per forward pass so that one batch of fp32 logits stays under `limit_bytes`."""
    return max(1, min(samples, limit_bytes // max(1, seq_len * vocab * 4 * 3)))


@dataclass
class _Batch:
    x: Any              # (B, L) token ids
    logp: Any = None    # full: (B, L, V) reference log-probs
    idx: Any = None     # top-k: (B, L, K) token ids
    top: Any = None     # top-k: (B, L, K) reference log-probs
    tail: Any = None    # top-k: (B, L, 1) log of the reference mass outside the top-k


class Reference:
    """Reference distributions for a token set, and KL of the model's current distributions to them."""

    def __init__(self, model: Any, chunks: np.ndarray, *, vocab: int, budget_bytes: int = 1 << 30,
                 check: Any = None):
        import mlx.core as mx

        samples, seq_len = chunks.shape
        self.tokens = int(chunks.size)
        self.full = self.tokens * vocab * 4 <= budget_bytes
        self.k = min(TOPK, vocab)
        b = batch_size(samples, seq_len, vocab)
        self.batches: list[_Batch] = []
        for i in range(0, samples, b):
            if check is not None:
                check()
            x = mx.array(chunks[i:i + b])
            logp = _log_softmax(forward(model, x))
            if self.full:
                batch = _Batch(x=x, logp=logp)
                mx.eval(batch.logp)
            else:
                idx = mx.argpartition(-logp, kth=self.k - 1, axis=-1)[..., : self.k]
                top = mx.take_along_axis(logp, idx, axis=-1)
                tail = _log1mexp(mx.logsumexp(top, axis=-1, keepdims=True))
                batch = _Batch(x=x, idx=idx, top=top, tail=tail)
                mx.eval(batch.idx, batch.top, batch.tail)
            self.batches.append(batch)

    @property
    def kind(self) -> str:
        return "full" if self.full else f"top-{self.k} + tail"

    def kl(self, model: Any, check: Any = None) -> float:
        """Mean KL(reference || model) in nats per token, over every position of every chunk."""
        total = 0.0
        for batch in self.batches:
            if check is not None:
                check()
            total += self.kl_sum(batch, _log_softmax(forward(model, batch.x)))
        return total / self.tokens

    def kl_sum(self, batch: _Batch, logq: Any) -> float:
        import mlx.core as mx

        if self.full:
            p = mx.exp(batch.logp)
            kl = (p * (batch.logp - logq)).sum(axis=-1)
        else:
            q_top = mx.take_along_axis(logq, batch.idx, axis=-1)
            p_top = mx.exp(batch.top)
            q_tail = _log1mexp(mx.logsumexp(q_top, axis=-1, keepdims=True))
            kl = (p_top * (batch.top - q_top)).sum(axis=-1) + \
                (mx.exp(batch.tail) * (batch.tail - q_tail)).sum(axis=-1)
        return float(mx.maximum(kl, 0.0).sum().item())


def _log_softmax(logits: Any) -> Any:
    import mlx.core as mx

    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def _log1mexp(a: Any) -> Any:
    """log(1 - exp(a)) for a <= 0, clamped away from -inf."""
    import mlx.core as mx

    return mx.log(mx.maximum(1.0 - mx.exp(a), 1e-12))
