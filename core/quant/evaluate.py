"""Held-out quality of quantized models against their unquantized base.

Per token: KL(base ‖ quant) of the next-token distributions; over the text: mean ± standard error,
median, p95, p99, max, top-1 agreement, and the perplexity of both models on the actual next tokens.
Models run one at a time: the base's log-probs are computed once and kept on the CPU (numpy, spilled to
a temporary memory-mapped file when large), then each quantized model is loaded, scored and dropped.

Chunks are token-id lists (any source: temper's held-out text, a user's file); keep them apart from the
calibration text and say which was used.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QuantError

SPILL_BYTES = 2 << 30


@dataclass
class Quality:
    name: str
    path: str
    tokens: int
    kl_mean: float
    kl_se: float
    kl_median: float
    kl_p95: float
    kl_p99: float
    kl_max: float
    top1: float            # share of positions where both models' most likely next token agree
    ppl: float
    base_ppl: float
    real_bpw: float
    size_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reference:
    """The base model's log-probs per chunk (float32, positions × vocab) and what the text was."""

    path: str
    chunks: list[list[int]]
    logprobs: list[np.ndarray]
    params: int
    size_bytes: int
    ppl: float


def model_logprobs(model: Any, chunk: Sequence[int]) -> np.ndarray:
    """log-softmax of the model's logits for every position of one chunk, as float32 numpy."""
    import mlx.core as mx

    logits = model(mx.array([list(chunk)]))[0].astype(mx.float32)
    lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    mx.eval(lp)
    return np.array(lp)


def _check_chunks(chunks: Sequence[Sequence[int]]) -> list[list[int]]:
    out = [list(map(int, c)) for c in chunks if len(c) >= 2]
    if not out:
        raise QuantError("no evaluation text: give at least one chunk of two or more tokens")
    return out


def _ppl(logprobs: Sequence[np.ndarray], chunks: Sequence[Sequence[int]]) -> float:
    nll, n = 0.0, 0
    for lp, chunk in zip(logprobs, chunks, strict=True):
        targets = np.asarray(chunk[1:])
        nll -= float(lp[np.arange(len(targets)), targets].sum())
        n += len(targets)
    return math.exp(nll / max(n, 1))


def folder_weight(folder: Path) -> int:
    from .write import source_tensor_bytes

    return source_tensor_bytes(Path(folder))


def folder_params(folder: Path) -> int:
    """Weights of an unquantized folder (every tensor element)."""
    from ..library.safetensors_header import read_header

    return sum(info.size for f in sorted(Path(folder).glob("*.safetensors")) for info in read_header(f)[0].values())


def reference_from_model(model: Any, chunks: Sequence[Sequence[int]], *, path: str = "", params: int = 0,
                         size_bytes: int = 0, check: Callable[[], None] | None = None) -> Reference:
    chunks = _check_chunks(chunks)
    spill = None
    logprobs = []
    for chunk in chunks:
        if check:
            check()
        lp = model_logprobs(model, chunk)
        if spill is None and lp.nbytes * len(chunks) > SPILL_BYTES:
            spill = tempfile.TemporaryDirectory(prefix="temper-eval-")
        if spill is not None:
            mm = np.lib.format.open_memmap(Path(spill.name) / f"{len(logprobs)}.npy", mode="w+",
                                           dtype=np.float32, shape=lp.shape)
            mm[:] = lp
            lp = mm
        logprobs.append(lp)
    ref = Reference(path, chunks, logprobs, params, size_bytes, _ppl(logprobs, chunks))
    ref._spill = spill  # type: ignore[attr-defined]  # keeps the temporary folder alive with the reference
    return ref


def compare_model(model: Any, ref: Reference, *, name: str, path: str = "", size_bytes: int = 0,
                  check: Callable[[], None] | None = None) -> Quality:
    """Score one (loaded) model against the reference."""
    start = time.perf_counter()
    kls, agree, qlps = [], [], []
    for base_lp, chunk in zip(ref.logprobs, ref.chunks, strict=True):
        if check:
            check()
        q = model_logprobs(model, chunk)
        p = np.exp(base_lp)
        kls.append((p * (base_lp - q)).sum(axis=-1))
        agree.append(base_lp.argmax(axis=-1) == q.argmax(axis=-1))
        qlps.append(q)
    kl = np.maximum(np.concatenate(kls), 0.0)
    top1 = float(np.concatenate(agree).mean())
    return Quality(
        name=name, path=path, tokens=int(kl.size), kl_mean=float(kl.mean()),
        kl_se=float(kl.std(ddof=1) / math.sqrt(kl.size)) if kl.size > 1 else 0.0,
        kl_median=float(np.median(kl)), kl_p95=float(np.percentile(kl, 95)), kl_p99=float(np.percentile(kl, 99)),
        kl_max=float(kl.max()), top1=top1, ppl=_ppl(qlps, ref.chunks), base_ppl=ref.ppl,
        real_bpw=size_bytes * 8 / max(ref.params, 1) if size_bytes else float("nan"), size_bytes=size_bytes,
        seconds=time.perf_counter() - start)


def _fast_on_cpu(model: Any) -> None:
    """On MLX's CPU backend, compute in fp32 as chat does (core/accel/compute): its bf16 kernels and
    bf16-scaled quantized matmuls are 10-50x slower, which left Evaluate crawling for minutes on a 135M
    model. The weights keep their values (bf16 and dequantized weights are exact in fp32), so the KL still
    measures the quantization; nothing changes on Metal or CUDA. A quantized model is dequantized to fp32
    once when that fits (chat's "mixed" plan keeps it packed and dequantizes every layer on every forward
    pass: for an evaluation of 16 chunks that is 16 dequantizations of the whole model)."""
    from ..accel.compute import free_memory, maybe_upcast, plan, prefer_fp32

    decided = plan(model)
    fp32 = decided.mode == "mixed" and prefer_fp32(decided.fp32_bytes, free_memory())
    maybe_upcast(model, "fp32" if fp32 else "auto")


def reference(base: Path, chunks: Sequence[Sequence[int]], *, check: Callable[[], None] | None = None,
              cancel: Callable[[], None] | None = None) -> Reference:
    """Load the base, compute its log-probs on the chunks, drop it. Call on the engine thread."""
    import mlx.core as mx

    from ..engine.loader import open_model

    model, _ = open_model(Path(base), check=cancel or check)   # `check` may count chunks: loading is not one
    _fast_on_cpu(model)
    ref = reference_from_model(model, chunks, path=str(base), params=folder_params(base),
                               size_bytes=folder_weight(base), check=check)
    del model
    mx.clear_cache()
    return ref


def compare_folder(ref: Reference, folder: Path, *, name: str | None = None,
                   check: Callable[[], None] | None = None, cancel: Callable[[], None] | None = None) -> Quality:
    import mlx.core as mx

    from ..engine.loader import open_model

    model, _ = open_model(Path(folder), check=cancel or check)
    _fast_on_cpu(model)
    try:
        return compare_model(model, ref, name=name or Path(folder).name, path=str(folder),
                             size_bytes=folder_weight(folder), check=check)
    finally:
        del model
        mx.clear_cache()


def opened_lazily(base: Path, quants: Sequence[Path]) -> None:
    """Every folder checked and built lazily (no weights read) before the base's long reference pass, so a
    broken QUANT is named at once, not after minutes."""
    from ..engine.loader import open_model

    for folder in (base, *quants):
        open_model(folder, lazy=True, finite=False)


def evaluate(ctx: Any, base: Path, quants: Sequence[Path], chunks: Sequence[Sequence[int]]) -> list[Quality]:
    """Engine job body: the base row first, then one row per quantized folder (loaded one at a time)."""
    from ..engine.events import Progress

    cancel = ctx.check if ctx is not None else (lambda: None)
    emit = ctx.emit if ctx is not None else (lambda _e: None)
    job = ctx.job_id if ctx is not None else 0
    opened_lazily(Path(base), [Path(q) for q in quants])
    total = (len(quants) + 1) * len(chunks)       # one step per chunk and model: a rate to take an ETA from
    done, current = 0, f"base {Path(base).name}"

    def check() -> None:                          # called before each chunk's forward pass
        nonlocal done
        cancel()
        emit(Progress(job, "evaluate", done, total, current))
        done += 1

    ref = reference(Path(base), chunks, check=check, cancel=cancel)
    base_row = Quality(Path(base).name, str(base), sum(len(c) for c in ref.chunks), 0, 0, 0, 0, 0, 0, 1.0,
                       ref.ppl, ref.ppl, ref.size_bytes * 8 / max(ref.params, 1), ref.size_bytes, 0.0)
    rows = [base_row]
    for q in quants:
        current = Path(q).name
        rows.append(compare_folder(ref, Path(q), check=check, cancel=cancel))
    emit(Progress(job, "evaluate", total, total, "done"))
    return rows


def text_chunks(tokenizer: Any, text: str, *, length: int = 256, count: int = 16) -> list[list[int]]:
    """Cut a text's token ids into `count` chunks of `length` tokens (fewer if the text is short)."""
    ids = list(tokenizer.encode(text))
    chunks = [ids[i:i + length] for i in range(0, len(ids) - 1, length)]
    chunks = [c for c in chunks if len(c) >= max(2, length // 4)][:count]
    if not chunks:
        raise QuantError(f"the evaluation text is too short ({len(ids)} tokens) for chunks of {length}")
    return chunks


QUALITY_HEADER = ("model", "bpw", "size MB", "KL mean ± SE", "median", "p95", "p99", "max", "top-1", "PPL")
QUALITY_RIGHT = frozenset(range(1, len(QUALITY_HEADER)))      # every column but the name holds a number


def quality_rows(rows: Sequence[Quality]) -> list[tuple[str, ...]]:
    """One row of cells per model under QUALITY_HEADER (the CLI renders them; the model card as text)."""
    return [(r.name, f"{r.real_bpw:.3f}", f"{r.size_bytes / 1e6:.2f}", f"{r.kl_mean:.4f} ± {r.kl_se:.4f}",
             f"{r.kl_median:.4f}", f"{r.kl_p95:.4f}", f"{r.kl_p99:.4f}", f"{r.kl_max:.3f}", f"{100 * r.top1:.1f}%",
             f"{r.ppl:.3f}") for r in rows]


def format_table(rows: Sequence[Quality]) -> str:
    """The quality table as aligned plain text (model cards, Markdown code blocks)."""
    from ..library.format import table

    return table(QUALITY_HEADER, quality_rows(rows), right=set(QUALITY_RIGHT))
