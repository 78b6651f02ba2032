"""The one reference of next-token distributions: a model's log-probs over token chunks, kept once, and the
KL divergence of another model's (or the same model's, changed) distributions to them.

Used by the sensitivity pass (in memory and streamed), the held-out evaluation (evaluate.py: `temper
eval`, the quantize job's verify step) and the benchmarks. The log-probs are kept in full when they fit
`budget_bytes` (tiny and small vocabularies), else as each position's top-k log-probs plus the remaining
tail mass, so a large vocabulary never holds fp32 logits for every position. The top-k form measures KL
between the two distributions with the tail collapsed into one outcome, which is a lower bound on the
full KL (and very close when the top-k hold nearly all the mass); `kind` says which was used. Top-1
agreement and perplexity are exact in both forms (the argmax is inside the top-k; the next tokens'
log-probs are taken before the top-k is cut).

Replay (sensitivity only): quantizing a tensor of block i leaves blocks 0..i-1 unchanged, so the reference
pass records each block's output and later passes replay them instead of recomputing (blocks are swapped
for stubs that return the recorded output, only during the call). This is only used when a check shows
the replayed forward gives the reference log-probs exactly, and when the recorded outputs fit the budget.

On MLX's CPU backend the vocabulary-wide math after the forward (logsumexp, the exp of log-probs in the KL,
the tail mass, argmax) runs in NumPy on the logits in place (host_math.py: MLX's CPU exp is scalar code, ~30x
slower than NumPy's, and cost more than a small model's forward); on Metal and CUDA it stays in MLX.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import host_activations, host_math
from .replay import Recorder, Replay, swapped

TOPK = 256


class PassCounter:
    """Forward passes made through `forward` (and the Fisher pass's forward+backward, counted by it).
    A sensitivity run reads `n` before and after: no patching of functions needed."""

    def __init__(self) -> None:
        self.n = 0


PASSES = PassCounter()


def forward(model: Any, x: Any) -> Any:
    """One forward pass (fp32 logits). Every pass of the sensitivity code and the evaluation goes through here
    (on MLX's CPU backend with the model's SiLU and attention softmax in NumPy: host_activations.py)."""
    import mlx.core as mx

    PASSES.n += 1
    with host_activations.swapped():
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


@dataclass
class TokenScores:
    """A model against the reference, per position of every chunk (for held-out quality reports)."""

    kl: np.ndarray       # KL(reference || model) in nats
    top1: np.ndarray     # whether both put the same token on top
    nll: float           # the model's negative log-likelihood of the chunks' next tokens, summed
    predicted: int       # how many next tokens that sum covers

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / max(self.predicted, 1))


class Reference:
    """Reference distributions for a token set, and KL of the model's current distributions to them.

    `chunks`: a (samples, seq_len) array, run `batch_size` rows at a time, or a list of token lists of any
    lengths, run one at a time (`check` is then called before each chunk: a progress step per chunk).
    `vocab`: the logits' width when known beforehand (it sizes the batches), else read from the first
    logits. `replay`: record block outputs for the sensitivity pass's replay (off for other uses)."""

    def __init__(self, model: Any, chunks: np.ndarray | Sequence[Sequence[int]], *, vocab: int | None = None,
                 budget_bytes: int = 1 << 30, check: Any = None, replay_bytes: int = 1 << 30,
                 replay: bool = True):
        import mlx.core as mx

        if isinstance(chunks, np.ndarray):
            samples, seq_len = chunks.shape
            if vocab is None:
                raise ValueError("a chunk array is batched by the vocabulary's size: give vocab")
            b = batch_size(samples, seq_len, vocab)
            xs = [chunks[i:i + b] for i in range(0, samples, b)]
        else:
            xs = [np.asarray([list(chunk)]) for chunk in chunks]
        self._start(sum(int(x.size) for x in xs), vocab, budget_bytes)
        layers = getattr(model, "layers", None)
        self.layers = layers if isinstance(layers, list) and layers else None
        self.recorded: list[list[Any]] = []
        hidden = _hidden_size(model)
        n_layers = len(self.layers) if self.layers else 0
        record = replay and self.layers is not None and self.tokens * hidden * 4 * n_layers <= replay_bytes
        for rows in xs:
            if check is not None:
                check()
            x = mx.array(rows)
            if record:
                outs: list[Any] = []
                with swapped(self.layers, {j: Recorder(layer, outs) for j, layer in enumerate(self.layers)}):
                    logits = forward(model, x)
                mx.eval(outs)
                self.recorded.append(outs)
            else:
                logits = forward(model, x)
            self.batches.append(self._batch(x, logits))
        # Replay must reproduce the reference; when it does not, every later pass runs whole forwards (2-10x
        # slower): said in `replay_note` (the table's meta, the job's progress line), never silently.
        self.replay_note = self._replay_check(model) if record else ""
        self.replay = record and not self.replay_note
        if not self.replay:      # nothing to replay: keep no block of the model (evaluate drops it for the next)
            self.recorded, self.layers = [], None

    @classmethod
    def from_logits(cls, xs: list[Any], logits: Iterable[Any], *, vocab: int | None = None,
                    budget_bytes: int = 1 << 30) -> Reference:
        """A reference from logits computed elsewhere (the streamed pass, a KV-cache run), one batch per x; no
        replay. `logits` may be a generator: each batch's logits are dropped once reduced."""
        self = cls.__new__(cls)
        self._start(int(sum(x.size for x in xs)), vocab, budget_bytes)
        self.layers, self.recorded, self.replay, self.replay_note = None, [], False, ""
        self.batches = [self._batch(x, lg) for x, lg in zip(xs, logits, strict=True)]
        return self

    def _start(self, tokens: int, vocab: int | None, budget_bytes: int) -> None:
        self.tokens = tokens
        self.budget_bytes = budget_bytes
        self.full, self.k = True, 0           # decided by _form, from `vocab` or the first logits
        self.nll, self.predicted = 0.0, 0     # the reference's own next-token log-likelihood (perplexity)
        self.batches: list[_Batch] = []
        if vocab is not None:
            self._form(vocab)

    def _form(self, vocab: int) -> None:
        self.full = self.tokens * vocab * 4 <= self.budget_bytes
        self.k = min(TOPK, vocab)

    def _batch(self, x: Any, logits: Any) -> _Batch:
        import mlx.core as mx

        if not self.k:
            self._form(int(logits.shape[-1]))
        if self.full:
            logp = _log_probs(logits)
            nll = _nll(logp, x)
            batch = _Batch(x=x, logp=logp)
            mx.eval(batch.logp, nll)
        else:   # never a second (B, L, V) array beside the logits: see _top_k
            lse = _logsumexp(logits)
            nll = _nll(logits, x, lse)
            idx = _top_k(logits, self.k)
            top = mx.take_along_axis(logits, idx, axis=-1) - lse
            tail = _tail(top)
            batch = _Batch(x=x, idx=idx, top=top, tail=tail)
            mx.eval(batch.idx, batch.top, batch.tail, nll)
        self.nll += float(nll.item())
        self.predicted += int(x.shape[0]) * max(int(x.shape[-1]) - 1, 0)
        return batch

    @property
    def ppl(self) -> float:
        """The reference model's perplexity on the chunks' own next tokens."""
        return math.exp(self.nll / max(self.predicted, 1))

    def _replay_check(self, model: Any) -> str:
        """Replaying the first half of the blocks must reproduce the reference log-probs: "" when it does,
        else why not (the pass then runs whole forwards, and says so)."""
        import mlx.core as mx

        batch = self.batches[0]
        slower = "every pass runs the whole model instead (2-10x slower)"
        try:
            logq = _log_probs(self._forward(model, 0, len(self.layers) // 2 or 1))
        except Exception as exc:  # this architecture's blocks cannot be stood in for: say what failed
            return f"block replay failed ({type(exc).__name__}: {exc}); {slower}"
        ref = batch.logp if self.full else batch.top
        got = logq if self.full else mx.take_along_axis(logq, batch.idx, axis=-1)
        if bool(mx.allclose(got, ref, rtol=1e-5, atol=1e-5).item()):
            return ""
        worst = float(mx.max(mx.abs(got - ref)).item())
        return f"block replay differs from the reference (max |Δ log p| {worst:.2e}); {slower}"

    def _forward(self, model: Any, index: int, start_layer: int | None) -> Any:
        """Forward batch `index`, replaying the recorded outputs of blocks before `start_layer`."""
        x = self.batches[index].x
        if not self.recorded or not start_layer:
            return forward(model, x)
        stubs = {j: Replay(self.layers[j], self.recorded[index][j]) for j in range(min(start_layer, len(self.layers)))}
        with swapped(self.layers, stubs):
            return forward(model, x)

    @property
    def kind(self) -> str:
        return "full" if self.full else f"top-{self.k} + tail"

    def kl(self, model: Any, check: Any = None, start_layer: int | None = None) -> float:
        """Mean KL(reference || model) in nats per token, over every position of every chunk.
        start_layer: the first block the change can affect (earlier blocks are replayed if possible)."""
        total = 0.0
        for i, batch in enumerate(self.batches):
            if check is not None:
                check()
            total += self.kl_sum(batch, self._forward(model, i, start_layer))
        return total / self.tokens

    def per_token(self, model: Any, check: Any = None) -> TokenScores:
        """Per position of every chunk: KL(reference || model), top-1 agreement; and the model's perplexity on
        the chunks' next tokens. For held-out quality reports (mean ± SE, percentiles, top-1, PPL)."""
        import mlx.core as mx

        kls, agree, nll = [], [], 0.0
        for i, batch in enumerate(self.batches):
            if check is not None:
                check()
            logits = self._forward(model, i, None)          # log-probs once shifted by their logsumexp
            if host_math.active():                          # on the CPU: NumPy (see host_math)
                kl, same, summed = self._scores_host(batch, logits)
                kls.append(kl.reshape(-1))
                agree.append(same.reshape(-1))
                nll += summed
                continue
            lse = mx.logsumexp(logits, axis=-1, keepdims=True)
            kls.append(np.array(self._kl_tokens(batch, logits, lse)).reshape(-1))
            ref_top = mx.argmax(batch.logp, axis=-1) if self.full else \
                mx.take_along_axis(batch.idx, mx.argmax(batch.top, axis=-1, keepdims=True), axis=-1)[..., 0]
            agree.append(np.array(ref_top == mx.argmax(logits, axis=-1)).reshape(-1))
            nll += float(_nll(logits, batch.x, lse).item())
        return TokenScores(np.concatenate(kls), np.concatenate(agree), nll, self.predicted)

    def _scores_host(self, batch: _Batch, logits: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """per_token's KL, top-1 agreement and summed NLL of one batch, in NumPy on the logits in place."""
        hm = host_math
        lg = hm.host(logits)
        lse = hm.logsumexp(lg)
        ref_top = hm.argmax(hm.host(batch.logp)) if self.full else \
            np.take_along_axis(hm.host(batch.idx), hm.argmax(hm.host(batch.top))[..., None], axis=-1)[..., 0]
        same = ref_top == hm.argmax(lg)
        return self._kl_host(batch, lg, lse), same, hm.nll(lg, hm.host(batch.x), lse)

    def _kl_host(self, batch: _Batch, logits: np.ndarray, lse: np.ndarray) -> np.ndarray:
        hm = host_math
        if self.full:
            return hm.kl_full(hm.host(batch.logp), logits, lse)
        return hm.kl_top(hm.host(batch.idx), hm.host(batch.top), hm.host(batch.tail), logits, lse)

    def kl_sum(self, batch: _Batch, logq: Any) -> float:
        """Summed KL of one batch; `logq`: the model's logits or log-probs (the same once normalised)."""
        return float(self._kl_tokens(batch, logq).sum().item())

    def _kl_tokens(self, batch: _Batch, logits: Any, lse: Any = None) -> Any:
        """Per-position KL(reference || model) from the model's logits (or log-probs), normalised here: the
        top-k form gathers K values per position and never builds the model's full log-probs."""
        import mlx.core as mx

        if host_math.active():                          # on the CPU: NumPy (see host_math)
            lg = host_math.host(logits)
            return self._kl_host(batch, lg, host_math.logsumexp(lg) if lse is None else host_math.host(lse))
        if lse is None:
            lse = mx.logsumexp(logits, axis=-1, keepdims=True)
        if self.full:
            p = mx.exp(batch.logp)
            kl = (p * (batch.logp - (logits - lse))).sum(axis=-1)
        else:
            q_top = mx.take_along_axis(logits, batch.idx, axis=-1) - lse
            p_top = mx.exp(batch.top)
            q_tail = _log1mexp(mx.logsumexp(q_top, axis=-1, keepdims=True))
            kl = (p_top * (batch.top - q_top)).sum(axis=-1) + \
                (mx.exp(batch.tail) * (batch.tail - q_tail)).sum(axis=-1)
        return mx.maximum(kl, 0.0)


TOPK_SLICE_BYTES = 32 << 20     # positions per argpartition: at most this much of (negated) logits at a time


def _top_k(logits: Any, k: int) -> Any:
    """Each position's k largest logits' token ids, (B, L, k), a few positions at a time, each slice evaluated
    and copied out: argpartition over all positions at once held two more (B, L, V) arrays (the negated
    logits and the full permutation), 0.5 GB per 256-token chunk of a 262k vocabulary, and a slice of its
    result kept the whole permutation alive as long as the reference."""
    import mlx.core as mx

    b, length, vocab = logits.shape
    step = max(1, TOPK_SLICE_BYTES // max(1, b * vocab * 4))
    parts = []
    for s in range(0, length, step):
        part = mx.contiguous(mx.argpartition(-logits[:, s:s + step], kth=k - 1, axis=-1)[..., :k])
        mx.eval(part)
        parts.append(part)
    return parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=1)


def log_softmax(logits: Any) -> Any:
    import mlx.core as mx

    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def _logsumexp(logits: Any) -> Any:
    """mx.logsumexp over the last axis (kept), by NumPy on MLX's CPU backend (host_math: 30x faster there)."""
    import mlx.core as mx

    if host_math.active():
        return mx.array(host_math.logsumexp(host_math.host(logits)))
    return mx.logsumexp(logits, axis=-1, keepdims=True)


def _log_probs(logits: Any) -> Any:
    """log_softmax, its logsumexp by NumPy on MLX's CPU backend: the reference's own and the replay check's
    (both ways alike, so the check compares like with like). Not for gradients (polish uses log_softmax)."""
    return logits - _logsumexp(logits)


def _tail(top: Any) -> Any:
    """The log of the mass outside a position's top-k log-probs `top` (by NumPy, in fp64, on the CPU)."""
    import mlx.core as mx

    if host_math.active():
        return mx.array(host_math.tail_mass(host_math.host(top)))
    return _log1mexp(mx.logsumexp(top, axis=-1, keepdims=True))


def _nll(logits: Any, x: Any, lse: Any = None) -> Any:
    """Minus the summed log-probs of each position's next token (the last position has none). `logits`:
    log-probs, or logits with their logsumexp `lse`."""
    import mlx.core as mx

    if x.shape[-1] < 2:
        return mx.array(0.0)
    picked = mx.take_along_axis(logits[:, :-1], x[:, 1:, None], axis=-1)
    return -(picked if lse is None else picked - lse[:, :-1]).sum()


def _log1mexp(a: Any) -> Any:
    """log(1 - exp(a)) for a <= 0, clamped away from -inf."""
    import mlx.core as mx

    return mx.log(mx.maximum(1.0 - mx.exp(a), 1e-12))


def _hidden_size(model: Any) -> int:
    args = getattr(model, "args", None)
    for name in ("hidden_size", "dim", "d_model"):
        value = getattr(args, name, None)
        if isinstance(value, int):
            return value
    return 1 << 14   # unknown: assume large, so the budget check is conservative
