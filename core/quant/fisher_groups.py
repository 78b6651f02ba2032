"""The Fisher pass in parts when its statistics would not fit beside the model (estimate.py).

The pass keeps, for every weight it scores, D (one squared-gradient sum per element, in the stored dtype: bf16
for a bf16 model) and the group sums of each group size: about the model's own size again. Llama-3-8B's pass
peaked at 33.4 GB for a 16 GB model (docs/benchmarks/quantize_gpu.md). Where that does not fit in the memory
this machine has free, the tensors are split into parts, in model order, each part small enough, and the pass
runs once per part: every part reads the whole calibration text, and only its own tensors' gradients and
statistics are made. The scores are the same (the same sequences, the same sampled labels: each tensor's
statistics do not depend on which others are measured beside it); the cost is one forward and backward pass per
part. The Linears go first in model order, then an untied head, then the looked-up tables. With `compact`, every
looked-up table is swapped for the rows the calibration reaches before the first part (fisher_tables.py), so that
no part holds a whole table (on an H100, session 13: a Llama-3-8B shape measured in parts peaked 1 GB higher than
in one, its 1 GB table having stayed whole until the last part). A looked-up table counts only those rows, and
the head one vocabulary slice's gradient (`Reach`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..accel.release import bounded_cache
from ..errors import QuantError
from ..library.format import human_bytes
from . import estimate, fisher_tables, logit_head
from .candidates import Candidate
from .tensors import QTensor

WORKING = 256 << 20          # beside the statistics: vocabulary slices, one sequence's activations
MAX_PARTS = 8                # the preflight refuses a fast pass that would need more (sensitivity.py)
ROOM_ENV = "TEMPER_FISHER_ROOM_MB"


@dataclass(frozen=True)
class Reach:
    """What the calibration text reaches: the distinct token ids (the rows of a looked-up table the pass keeps
    statistics and gradients for, estimate.py) and the head's rows per vocabulary slice (its gradient is made
    one slice at a time)."""

    rows: int
    slice_rows: int

    @classmethod
    def of(cls, chunks: np.ndarray, vocab: int) -> Reach:
        return cls(len(np.unique(chunks)), logit_head.slice_rows(chunks.shape[1], vocab))


def held_rows(t: QTensor, head_path: str, reach: Reach | None) -> tuple[int, int]:
    """(rows of `t` the pass keeps statistics for, rows of its float32 gradient held at once). Without a
    `reach`, every row for both (an upper bound)."""
    rows = t.params // t.shape[-1]
    if reach is None:
        return rows, rows
    if t.path == head_path:                                  # full statistics, gradient a slice at a time
        return rows, min(rows, reach.slice_rows)
    if fisher_tables.only_looked_up(t, head_path):           # the rows reached
        return min(rows, reach.rows), min(rows, reach.rows)
    return rows, rows


def statistics_bytes(t: QTensor, candidates: list[Candidate], element: int, rows: int | None = None) -> int:
    """Bytes of the statistics the pass keeps for `t` (or for `rows` of it): D, plus the sums of each group
    size that fits it."""
    groups = {c.group_size for c in candidates if c.fits(t.shape)}
    kept = t.params if rows is None else rows * t.shape[-1]
    return int(kept * element * (1 + sum(1 / g for g in groups)))


def needed_bytes(tensors: list[QTensor], candidates: list[Candidate], element: int, head_path: str = "",
                 reach: Reach | None = None) -> int:
    """What a pass over `tensors` holds for them: their statistics and the largest float32 gradient."""
    held = [(t, *held_rows(t, head_path, reach)) for t in tensors]
    return sum(statistics_bytes(t, candidates, element, kept) for t, kept, _ in held) + \
        4 * max((grad * t.shape[-1] for t, _, grad in held), default=0)


def parts(tensors: list[QTensor], candidates: list[Candidate], element: int, room: int,
          head_path: str, reach: Reach | None = None, whence: str = "") -> list[list[QTensor]]:
    """`tensors` in parts that each need (`needed_bytes`) at most `room` bytes (the order is the module
    docstring's); one part where all fit. Raises QuantError where a single tensor does not fit (`whence`: where
    the room came from, for that message)."""
    def need(ts: list[QTensor]) -> int:
        return needed_bytes(ts, candidates, element, head_path, reach)

    if need(tensors) <= room:
        return [tensors]
    for t in tensors:
        if need([t]) > room:
            raise QuantError(f"the sensitivity statistics of {t.path} alone need {human_bytes(need([t]))} and "
                             f"{human_bytes(max(room, 0))} is left for them{whence}: free memory or use a machine "
                             "with more")
    looked_up = [t for t in tensors if fisher_tables.is_table(t)]        # embeddings (a tied head among them)
    order = [t for t in tensors if t not in looked_up and t.path != head_path]
    order += [t for t in tensors if t.path == head_path and t not in looked_up] + looked_up
    out: list[list[QTensor]] = []
    current: list[QTensor] = []
    for t in order:
        if current and need([*current, t]) > room:
            out.append(current)
            current = []
        current.append(t)
    out.append(current)
    return out


def grouped_estimates(model: Any, chunks: Any, tensors: list[QTensor], candidates: list[Candidate], *,
                      room: int, element: int, progress: Callable[..., None] | None = None,
                      note: Callable[[str], None] | None = None, compact: bool = False,
                      **options: Any) -> dict[str, dict[str, float]]:
    """`estimate.fisher_estimates` over `tensors`, in as many parts as `room` bytes of statistics require
    (`parts`); `note(text)` says so once when there is more than one. Same options as fisher_estimates."""
    head = logit_head.find_head(model)
    reach = Reach.of(chunks, head.vocab)
    cap = os.environ.get(ROOM_ENV, "").strip()
    capped = f", capped by {ROOM_ENV}={cap}" if cap.isdigit() and room == int(cap) << 20 else ""
    whence = f" ({human_bytes(room)} free for the pass{capped}, less {human_bytes(WORKING)} for its working arrays)"
    split = parts(tensors, candidates, element, room - WORKING, head.path, reach, whence)
    if len(split) > 1 and note is not None:
        need = needed_bytes(tensors, candidates, element, head.path, reach)
        note(f"the Fisher statistics need {human_bytes(need)} and "
             f"{human_bytes(max(room - WORKING, 0))} of the free memory is left for them: measured in {len(split)} "
             "parts, one pass over the calibration text each")
    sizes = options.pop("sizes", None)
    steps = [len(chunks) + len(part) for part in split]       # each part's progress steps (estimate.py)
    out: dict[str, dict[str, float]] = {}
    compacted: fisher_tables.Compacted = {}
    if compact:       # before the first part: no part then holds a whole table it does not need; the
        with bounded_cache(estimate.CACHE_BYTES):      # tables' memory goes back, not into MLX's cache
            compacted = fisher_tables.compact_tables(
                [t for t in tensors if fisher_tables.only_looked_up(t, head.path)], np.unique(chunks))
    for k, part in enumerate(split):
        got: dict[str, int] = {}
        report = progress
        if progress is not None and len(split) > 1:       # one count and one ETA across the parts
            def report(done: int, total: int, message: str, work: dict[str, float] | None = None, k: int = k,
                       before: int = sum(steps[:k])) -> None:
                units = dict(work or {})
                if units.get("work_total"):
                    units = {"work": k + units["work"] / units["work_total"], "work_total": float(len(split))}
                progress(before + done, sum(steps), f"part {k + 1}/{len(split)} · {message}", units)
        out.update(estimate.fisher_estimates(model, chunks, part, candidates, progress=report, sizes=got,
                                             compacted=compacted, **options))
        if sizes is not None:              # the largest part's statistics: what the pass held at once
            sizes["statistics"] = max(sizes.get("statistics", 0), got.get("statistics", 0))
    if sizes is not None:
        sizes["parts"] = len(split)
    return out


def free_room() -> int:
    """Bytes the pass's statistics may take now: a share of the memory free where MLX computes, or at most
    `TEMPER_FISHER_ROOM_MB` (a cap for a machine shared with other work, or to price the parts on a big one)."""
    from .mode import FIT_FRACTION, available_bytes

    room = int(FIT_FRACTION * available_bytes())
    cap = os.environ.get(ROOM_ENV, "").strip()
    return min(room, int(cap) << 20) if cap.isdigit() and int(cap) > 0 else room

