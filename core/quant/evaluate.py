"""Held-out quality of quantized models against their unquantized base.

Per token: KL(base ‖ quant) of the next-token distributions; over the text: mean ± standard error,
median, p95, p99, max, top-1 agreement, and the perplexity of both models on the actual next tokens.
Models run one at a time: the base's distributions are computed once and kept as the one reference of
core/quant/reference.py (in full for small vocabularies, else top-k plus tail: `Quality.reference` says
which), then each quantized model is loaded, scored and dropped.

Chunks are token-id lists (any source: temper's held-out text, a user's file); keep them apart from the
calibration text and say which was used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QuantError
from .reference import Reference


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
    reference: str = "full"   # the base's distributions: "full" or "top-256 + tail" (KL then a close lower bound)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HeldOutBase:
    """The base model's side of an evaluation: its reference distributions on the held-out chunks, and the
    facts its row reports."""

    path: str
    chunks: list[list[int]]
    reference: Reference
    params: int
    size_bytes: int

    @property
    def ppl(self) -> float:
        return self.reference.ppl


def _check_chunks(chunks: Sequence[Sequence[int]]) -> list[list[int]]:
    out = [list(map(int, c)) for c in chunks if len(c) >= 2]
    if not out:
        raise QuantError("no evaluation text: give at least one chunk of two or more tokens")
    return out


def folder_weight(folder: Path) -> int:
    from .write import source_tensor_bytes

    return source_tensor_bytes(Path(folder))


def folder_params(folder: Path) -> int:
    """Weights of an unquantized folder (every tensor element)."""
    from ..library.safetensors_header import read_header

    return sum(info.size for f in sorted(Path(folder).glob("*.safetensors")) for info in read_header(f)[0].values())


def reference_from_model(model: Any, chunks: Sequence[Sequence[int]], *, path: str = "", params: int = 0,
                         size_bytes: int = 0, check: Callable[[], None] | None = None) -> HeldOutBase:
    """The base's reference distributions, one chunk per forward (`check` before each)."""
    chunks = _check_chunks(chunks)
    return HeldOutBase(path, chunks, Reference(model, chunks, check=check, replay=False), params, size_bytes)


def compare_model(model: Any, base: HeldOutBase, *, name: str, path: str = "", size_bytes: int = 0,
                  check: Callable[[], None] | None = None) -> Quality:
    """Score one (loaded) model against the base's reference."""
    start = time.perf_counter()
    scores = base.reference.per_token(model, check=check)
    kl = scores.kl
    return Quality(
        name=name, path=path, tokens=int(kl.size), kl_mean=float(kl.mean()),
        kl_se=float(kl.std(ddof=1) / math.sqrt(kl.size)) if kl.size > 1 else 0.0,
        kl_median=float(np.median(kl)), kl_p95=float(np.percentile(kl, 95)), kl_p99=float(np.percentile(kl, 99)),
        kl_max=float(kl.max()), top1=float(scores.top1.mean()), ppl=scores.ppl, base_ppl=base.ppl,
        real_bpw=size_bytes * 8 / max(base.params, 1) if size_bytes else float("nan"), size_bytes=size_bytes,
        seconds=time.perf_counter() - start, reference=base.reference.kind)


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
              cancel: Callable[[], None] | None = None) -> HeldOutBase:
    """Load the base, compute its reference distributions on the chunks, drop it. Call on the engine thread."""
    import mlx.core as mx

    from ..engine.loader import open_model

    model, _ = open_model(Path(base), check=cancel or check)   # `check` may count chunks: loading is not one
    _fast_on_cpu(model)
    ref = reference_from_model(model, chunks, path=str(base), params=folder_params(base),
                               size_bytes=folder_weight(base), check=check)
    del model
    mx.clear_cache()
    return ref


def compare_folder(ref: HeldOutBase, folder: Path, *, name: str | None = None,
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
    total = (len(quants) + 1) * len(chunks)       # one step per chunk and model: a rate to take an ETA from
    done, current = 0, f"base {Path(base).name}"
    opened_lazily(Path(base), [Path(q) for q in quants])     # a broken folder: one error line, nothing before
    emit(Progress(job, "evaluate", 0, total, f"loading {current}"))   # said before the long load, not after

    def check() -> None:                          # called before each chunk's forward pass
        nonlocal done
        cancel()
        emit(Progress(job, "evaluate", done, total, current))
        done += 1

    ref = reference(Path(base), chunks, check=check, cancel=cancel)
    base_row = Quality(Path(base).name, str(base), sum(len(c) for c in ref.chunks), 0, 0, 0, 0, 0, 0, 1.0,
                       ref.ppl, ref.ppl, ref.size_bytes * 8 / max(ref.params, 1), ref.size_bytes, 0.0,
                       reference=ref.reference.kind)
    rows = [base_row]
    for q in quants:
        current = Path(q).name
        emit(Progress(job, "evaluate", done, total, f"loading {current}"))
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


def reference_note(rows: Sequence[Quality]) -> str:
    """A line under the table when the base's distributions were kept as top-k plus tail (large vocabularies):
    the KL column is then a close lower bound on the full KL. Empty when they were kept in full."""
    kinds = sorted({r.reference for r in rows if r.reference != "full"})
    return f"KL against the base's {', '.join(kinds)} log-probs: a close lower bound on the full KL" if kinds else ""


def format_table(rows: Sequence[Quality]) -> str:
    """The quality table as aligned plain text (model cards, Markdown code blocks)."""
    from ..library.format import table

    note = reference_note(rows)
    return table(QUALITY_HEADER, quality_rows(rows), right=set(QUALITY_RIGHT)) + (f"\n{note}" if note else "")
