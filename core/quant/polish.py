"""An optional short KL-distillation polish of a written model's scales and biases (DWQ-style).

`polish_folder(folder, source, chunks, steps)` trains only the quantized layers' scales and biases (affine,
below 8 bits: what mlx-lm's DWQ trains) to lower KL(float ‖ quant) of next-token distributions on the
calibration chunks, with Adam at a small learning rate. Packed weights and every other tensor stay bit for
bit as written; only the `.scales` / `.biases` tensors of the safetensors files are rewritten, in their
stored dtype, each file atomically, so the folder is still what verify checks and plain `mlx_lm.load` reads.

The float teacher runs once per chunk before training and keeps each position's top-k log-probs plus the
mass outside them (every log-prob when the vocabulary is no larger than k): never a whole set's logits,
and the teacher is dropped before the first step. Memory: the quantized model, its trained tensors in fp32
with Adam's two moments, one chunk's activations, and chunks × seq_len × k × 8 bytes of targets.

A share of the chunks is held out from training: their KL (with the trained values rounded to the stored
dtype, as they will be written) is measured before the first step and every few steps; the best state is
kept, and when no step beats the unpolished model the folder is left as it was.

On MLX's CPU backend the trained layers compute x @ dequantize(w, s, b)ᵀ in fp32 (a BLAS product, ~10x
faster there than the quantized kernel's gradient); elsewhere the quantized kernels themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QuantError
from .reference import log_softmax

TOPK = 256               # teacher log-probs kept per position (plus the tail mass)
LEARNING_RATE = 1e-5     # Adam, on fp32 copies of the scales and biases
HELD_OUT_SHARE = 0.125   # of the calibration chunks, for choosing the step to keep
CHECKS = 8               # held-out measurements over the run (plus one before the first step)

Progress = Callable[..., None]       # (phase, done, total[, message]); may raise to cancel


@dataclass
class PolishReport:
    steps: int               # steps run
    best_step: int           # the step whose state was kept (0: the unpolished model)
    kl_before: float         # held-out calibration KL, nats per token, before polishing
    kl_after: float          # ... with the kept state (as written: stored dtype)
    tensors: int             # quantized layers trained
    params: int              # scales and biases trained
    train_chunks: int
    held_out_chunks: int
    seconds: float
    learning_rate: float

    def describe(self) -> str:
        kept = (f"kept step {self.best_step}" if self.best_step else "no step beat the unpolished model: "
                "left unchanged")
        return (f"KL-distillation polish of {self.tensors} layers' scales and biases ({self.params:,} values): "
                f"{self.steps} Adam steps (lr {self.learning_rate:g}) on {self.train_chunks} calibration chunks; "
                f"KL on {self.held_out_chunks} held-out calibration chunks {self.kl_before:.4f} → "
                f"{self.kl_after:.4f} ({kept}), {self.seconds:.0f} s")


@dataclass
class _Target:
    x: Any                   # (1, L) token ids
    logp: Any = None         # full: (1, L, V) teacher log-probs
    idx: Any = None          # top-k: (1, L, K) token ids
    top: Any = None          # top-k: (1, L, K) teacher log-probs
    tail: Any = None         # top-k: (1, L, 1) log of the teacher's mass outside the top k


def trainable(model: Any) -> list[tuple[str, Any]]:
    """(path, module) of every quantized layer whose scales and biases the polish trains."""
    return [(p, m) for p, m in model.named_modules()
            if hasattr(m, "scales") and getattr(m, "mode", "") == "affine" and getattr(m, "bits", 8) < 8
            and hasattr(m, "group_size") and m.get("biases") is not None]


def _log1mexp(a: Any) -> Any:
    import mlx.core as mx

    return mx.log(mx.maximum(1.0 - mx.exp(a), 1e-12))


def teacher_targets(teacher: Any, chunks: Sequence[Sequence[int]], *, k: int = TOPK,
                    progress: Progress | None = None) -> list[_Target]:
    """The float model's next-token distributions on each chunk, one forward pass at a time."""
    import mlx.core as mx

    out = []
    for i, chunk in enumerate(chunks):
        if progress is not None:
            progress("teacher", i, len(chunks), f"float model, chunk {i + 1}/{len(chunks)}")
        x = mx.array([list(map(int, chunk))])
        logp = log_softmax(teacher(x).astype(mx.float32))
        if logp.shape[-1] <= k:
            t = _Target(x=x, logp=logp)
            mx.eval(t.logp)
        else:
            idx = mx.argpartition(-logp, kth=k - 1, axis=-1)[..., :k]
            top = mx.take_along_axis(logp, idx, axis=-1)
            t = _Target(x=x, idx=idx, top=top, tail=_log1mexp(mx.logsumexp(top, axis=-1, keepdims=True)))
            mx.eval(t.idx, t.top, t.tail)
        out.append(t)
    if progress is not None:
        progress("teacher", len(chunks), len(chunks), "float model done")
    return out


def kl_mean(logits: Any, t: _Target) -> Any:
    """Mean KL(teacher ‖ model) per position (differentiable in `logits`)."""
    import mlx.core as mx

    logq = log_softmax(logits.astype(mx.float32))
    if t.logp is not None:
        kl = (mx.exp(t.logp) * (t.logp - logq)).sum(axis=-1)
    else:
        q_top = mx.take_along_axis(logq, t.idx, axis=-1)
        q_tail = _log1mexp(mx.logsumexp(q_top, axis=-1, keepdims=True))
        kl = (mx.exp(t.top) * (t.top - q_top)).sum(axis=-1) + (mx.exp(t.tail) * (t.tail - q_tail)).sum(axis=-1)
    return kl.mean()


def _dequant_classes() -> dict[type, type]:
    """Stand-ins computing with the dequantized weight (fp32 BLAS on a CPU); same parameters, same math."""
    import mlx.core as mx
    import mlx.nn as nn

    def weight(m: Any) -> Any:
        return mx.dequantize(m["weight"], m["scales"], m.get("biases"), group_size=m.group_size, bits=m.bits,
                             mode=m.mode)

    class DequantLinear(nn.QuantizedLinear):
        def __call__(self, x: Any) -> Any:
            y = x @ weight(self).T
            return y + self["bias"] if "bias" in self else y

    class DequantEmbedding(nn.QuantizedEmbedding):
        def as_linear(self, x: Any) -> Any:
            return x @ weight(self).T

    return {nn.QuantizedLinear: DequantLinear, nn.QuantizedEmbedding: DequantEmbedding}


def polish_model(model: Any, targets: list[_Target], steps: int, *, learning_rate: float = LEARNING_RATE,
                 stored_dtype: Any = None, progress: Progress | None = None, seed: int = 0) -> PolishReport:
    """Train `model`'s quantized scales and biases in place (fp32) and leave it in the best held-out state.
    `stored_dtype`: the dtype they will be written in (held-out KL is measured with values rounded to it)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np

    from ..accel.compute import on_cpu_backend

    start = time.perf_counter()
    say = progress or (lambda *_a: None)
    layers = trainable(model)
    if not layers:
        raise QuantError("nothing to polish: the model has no affine quantized layers below 8 bits")
    if len(targets) < 2:
        raise QuantError("the polish needs at least two calibration chunks (one is held out)")
    n_held = max(1, round(len(targets) * HELD_OUT_SHARE))
    train, held = targets[:-n_held], targets[-n_held:]
    model.set_dtype(mx.float32)              # floats only: packed weights keep their integer dtype
    swapped = []
    if on_cpu_backend():
        classes = _dequant_classes()
        for _, m in layers:
            if type(m) in classes:
                swapped.append((m, type(m)))
                m.__class__ = classes[type(m)]
    model.freeze()
    for _, m in layers:
        m.unfreeze(keys=["scales", "biases"], recurse=False)
    stored_dtype = stored_dtype or mx.bfloat16
    params = sum(m["scales"].size + m["biases"].size for _, m in layers)

    def state() -> dict[str, tuple[Any, Any]]:
        return {p: (m["scales"], m["biases"]) for p, m in layers}

    def put(values: dict[str, tuple[Any, Any]]) -> None:
        for p, m in layers:
            m.scales, m.biases = values[p]

    def held_out() -> float:
        now = state()
        put({p: (s.astype(stored_dtype).astype(mx.float32), b.astype(stored_dtype).astype(mx.float32))
             for p, (s, b) in now.items()})
        total = sum(float(kl_mean(model(t.x), t).item()) for t in held)
        put(now)
        return total / len(held)

    def loss_fn(_model: Any, t: _Target) -> Any:
        return kl_mean(_model(t.x), t)

    grad_fn = nn.value_and_grad(model, loss_fn)
    opt = optim.Adam(learning_rate=learning_rate, bias_correction=True)
    try:
        say("polish", 0, steps, "held-out KL before polishing")
        before = best = held_out()
        best_state, best_step = state(), 0
        every = max(1, steps // CHECKS)
        order = np.random.default_rng(seed)
        queue: list[int] = []
        recent: list[float] = []
        for step in range(1, steps + 1):
            if not queue:
                queue = list(order.permutation(len(train)))
            loss, grads = grad_fn(model, train[queue.pop()])
            opt.update(model, grads)
            mx.eval(loss, model.trainable_parameters(), opt.state)
            recent = (recent + [float(loss.item())])[-every:]
            if step % every == 0 or step == steps:
                kl = held_out()
                if kl < best:
                    best, best_state, best_step = kl, state(), step
            say("polish", step, steps, f"train KL {sum(recent) / len(recent):.4f} · held-out {best:.4f} "
                                       f"(unpolished {before:.4f})")
        put(best_state)
    finally:
        for m, cls in swapped:
            m.__class__ = cls
    return PolishReport(steps=steps, best_step=best_step, kl_before=before, kl_after=best, tensors=len(layers),
                        params=int(params), train_chunks=len(train), held_out_chunks=len(held),
                        seconds=time.perf_counter() - start, learning_rate=learning_rate)


def write_back(folder: Path, values: dict[str, Any]) -> int:
    """Replace the named tensors in the folder's safetensors files (same shape, stored dtype kept; every
    other tensor copied unchanged), each file atomically. Returns how many were replaced."""
    import mlx.core as mx

    replaced = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        arrays, meta = mx.load(str(f), return_metadata=True)
        hit = [k for k in arrays if k in values]
        if not hit:
            continue
        for k in hit:
            if tuple(values[k].shape) != tuple(arrays[k].shape):
                raise QuantError(f"polish: {k} has shape {tuple(values[k].shape)}, the file {tuple(arrays[k].shape)}")
            arrays[k] = values[k].astype(arrays[k].dtype)
        tmp = f.with_name(f".polish-{os.getpid()}-{f.name}")
        try:
            mx.save_safetensors(str(tmp), arrays, metadata=meta)
            os.replace(tmp, f)
        finally:
            tmp.unlink(missing_ok=True)
        replaced += len(hit)
    if replaced != len(values):
        raise QuantError(f"polish: {len(values) - replaced} trained tensors are in no safetensors file of {folder}")
    return replaced


def _note_in_card(folder: Path, line: str) -> None:
    from .. import atomic

    card = Path(folder) / "README.md"
    if not card.is_file():
        return
    lines = card.read_text().splitlines(keepends=True)
    at = next((i + 1 for i, x in enumerate(lines) if x.startswith("- Rounding:")), len(lines))
    atomic.write_text(card, "".join(lines[:at] + [f"- Polish: {line}\n"] + lines[at:]))


def polish_folder(folder: Path, source: Path, chunks: Sequence[Sequence[int]], steps: int, *,
                  learning_rate: float = LEARNING_RATE, progress: Progress | None = None) -> PolishReport:
    """Polish the quantized model in `folder` against its float `source` on `chunks`; rewrite its scales and
    biases in place when the held-out KL improved. Call on the engine thread."""
    import mlx.core as mx

    from ..accel.compute import maybe_upcast
    from ..engine.loader import open_model

    if steps < 1:
        raise QuantError("polish steps must be at least 1")
    say = progress or (lambda *_a: None)
    say("teacher", 0, len(chunks), f"loading {Path(source).name}")
    teacher, _ = open_model(Path(source))
    maybe_upcast(teacher)                   # fp32 on a CPU with fast BLAS (exact for bf16 weights)
    targets = teacher_targets(teacher, chunks, progress=say)
    del teacher
    mx.clear_cache()
    model, _ = open_model(Path(folder))
    layers = trainable(model)
    stored = {p: m["scales"].dtype for p, m in layers}
    dtype = next(iter(stored.values()), mx.bfloat16)
    report = polish_model(model, targets, steps, learning_rate=learning_rate, stored_dtype=dtype, progress=say)
    if report.best_step:
        values = {}
        for p, m in layers:
            values[f"{p}.scales"] = m["scales"].astype(stored[p])
            values[f"{p}.biases"] = m["biases"].astype(stored[p])
        write_back(Path(folder), values)
    _note_in_card(folder, report.describe())
    del model
    mx.clear_cache()
    return report
