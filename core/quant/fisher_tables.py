"""The looked-up tables in the Fisher pass (estimate.py): taps for their gradients, and compaction.

A table only looked up (an input embedding that is not the head, Gemma-4's per-layer input tables) is measured
on the rows the calibration text reaches, so the pass may swap the table for those rows (`compact`: about
4.6 GB less for gemma4 E2B's per-layer tables) once nothing will read the model's other rows again. The
pass in parts (fisher_groups.py) compacts every table before its first part: each part then looks up the
compacted tables through their maps, whether it measures them (`EmbedTap`) or not (`Remapped`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tensors import QTensor

# path -> (the table's module, token id -> row map of its compacted weight)


def is_table(t: QTensor) -> bool:
    """Whether `t` is looked up (an Embedding's table, a tied head among them) rather than multiplied."""
    return hasattr(t.module, "as_linear") and t.path != "lm_head"


def only_looked_up(t: QTensor, head_path: str) -> bool:
    """A table that is not also the head: measured and kept on the rows the calibration reaches."""
    return is_table(t) and t.path != head_path
Compacted = dict[str, tuple[Any, Any]]


class EmbedTap:
    """Stands in for an Embedding: lookup + a zero offset whose gradient is dL/d(lookup output)."""

    def __init__(self, inner: Any, remap: Any = None):
        self.inner = inner
        self.offset: Any = None
        self.seen: Any = None
        self.remap: Any = remap        # token id -> row of a compacted table (`compact`), or None

    def __call__(self, x: Any) -> Any:
        self.seen = x
        out = self.inner(x if self.remap is None else self.remap[x])
        return out if self.offset is None else out + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Remapped:
    """Stands in for a compacted table a pass does not measure: looks its token ids up through the map."""

    def __init__(self, inner: Any, remap: Any):
        self.inner, self.remap = inner, remap

    def __call__(self, x: Any) -> Any:
        return self.inner(self.remap[x])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def compact(module: Any, rows: np.ndarray) -> Any:
    """Swap an Embedding's table for its `rows` (sorted token ids) and return the id -> row map; None (nothing
    swapped) for a table that is not a plain float one."""
    import mlx.core as mx

    weight = module["weight"]
    if "scales" in module or weight.ndim != 2 or not mx.issubdtype(weight.dtype, mx.floating):
        return None
    index = np.zeros(weight.shape[0], dtype=np.int32)
    index[rows] = np.arange(len(rows), dtype=np.int32)
    module["weight"] = weight[mx.array(rows)]
    del weight
    mx.eval(module["weight"])
    return mx.array(index)


def compact_tables(tables: list[QTensor], rows: np.ndarray) -> Compacted:
    """`compact` each of `tables` (looked up only, never the head) to `rows`; those it swapped, with their maps."""
    out: Compacted = {}
    for t in tables:
        index = compact(t.module, rows)
        if index is not None:
            out[t.path] = (t.module, index)
    return out


def parent_of(model: Any, path: str) -> tuple[Any, str]:
    *head, last = path.split(".")
    node = model
    for part in head:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, last


def install(model: Any, measured: list[QTensor], compacted: Compacted) -> tuple[dict[str, EmbedTap], list]:
    """Taps in place of the `measured` tables (through their maps where compacted) and `Remapped` stand-ins for
    the other compacted tables: (the taps by path, what `restore` puts back)."""
    taps: dict[str, EmbedTap] = {}
    undo: list[tuple[str, Any]] = []
    for t in measured:
        parent, name = parent_of(model, t.path)
        taps[t.path] = EmbedTap(t.module, compacted[t.path][1] if t.path in compacted else None)
        parent[name] = taps[t.path]
        undo.append((t.path, t.module))
    for path, (module, index) in compacted.items():
        if path not in taps:
            parent, name = parent_of(model, path)
            parent[name] = Remapped(module, index)
            undo.append((path, module))
    return taps, undo


def restore(model: Any, undo: list[tuple[str, Any]]) -> None:
    for path, module in undo:
        parent, name = parent_of(model, path)
        parent[name] = module
