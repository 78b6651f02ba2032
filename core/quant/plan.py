"""A quantization plan: one choice per tensor (a candidate or "float"), with its real cost and predicted ΔKL.

The plan is what the allocator and the recipes produce, what the writer applies, and what verify checks
the written model against. Costs are exact storage bits (packed weights + scales + biases in the plan's
float dtype), so `real_bpw` here is what the files will weigh; verify re-measures it from the files.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import QuantError
from .candidates import Candidate

FLOAT = "float"        # the key of "keep this tensor unquantized"
PLAN_VERSION = 1
PLAN_FILE = "temper-plan.json"


def tensor_bits(key: str, params: int, float_bytes: int) -> int:
    """Exact storage bits of a tensor of `params` weights stored as `key` (candidate key or 'float')."""
    if key == FLOAT:
        return params * 8 * float_bytes
    return round(Candidate.from_key(key).bits_per_weight(float_bytes) * params)


@dataclass
class PlanEntry:
    path: str
    shape: tuple[int, ...]
    params: int
    key: str                       # candidate key ("affine:4b:g64") or "float"
    bits: int                      # exact storage bits of this tensor as planned
    dkl: float | None = None       # predicted ΔKL (None where no score was used)
    source: str = "allocated"      # allocated | pinned | protected | model rule | recipe

    @property
    def candidate(self) -> Candidate | None:
        return None if self.key == FLOAT else Candidate.from_key(self.key)

    @property
    def label(self) -> str:
        c = self.candidate
        return "float" if c is None else str(c)


@dataclass
class Plan:
    model: str
    method: str                    # recipe name or "temper"
    float_bytes: int
    fixed_bits: int
    fixed_params: int
    entries: list[PlanEntry] = field(default_factory=list)
    budget_bits: int | None = None  # the hard cap this plan was made under (None: no budget)
    lower_bound: float | None = None  # LP lower bound on total ΔKL (allocator only)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = PLAN_VERSION

    # -- totals ------------------------------------------------------------------------------------------
    @property
    def params(self) -> int:
        return sum(e.params for e in self.entries) + self.fixed_params

    @property
    def total_bits(self) -> int:
        return sum(e.bits for e in self.entries) + self.fixed_bits

    @property
    def size_bytes(self) -> int:
        return (self.total_bits + 7) // 8

    @property
    def real_bpw(self) -> float:
        return self.total_bits / max(self.params, 1)

    @property
    def float_size_bytes(self) -> int:
        """Size of the same tensors all kept in the plan's float dtype."""
        return self.params * self.float_bytes

    @property
    def predicted_dkl(self) -> float | None:
        scored = [e.dkl for e in self.entries if e.dkl is not None]
        return sum(scored) if scored else None

    @property
    def budget_bpw(self) -> float | None:
        return None if self.budget_bits is None else self.budget_bits / max(self.params, 1)

    def by_path(self) -> dict[str, PlanEntry]:
        return {e.path: e for e in self.entries}

    def width_counts(self) -> dict[str, tuple[int, int]]:
        """label -> (number of tensors, number of weights), widest first."""
        counts: Counter[str] = Counter()
        weights: Counter[str] = Counter()
        order: dict[str, tuple[int, int, str]] = {}
        for e in self.entries:
            counts[e.label] += 1
            weights[e.label] += e.params
            c = e.candidate
            order[e.label] = (1, 0, "") if c is None else (0, -c.bits, c.key)
        return {k: (counts[k], weights[k]) for k in sorted(counts, key=order.__getitem__)}

    # -- mlx-lm config -----------------------------------------------------------------------------------
    def quantization_config(self) -> dict[str, Any]:
        """config.json 'quantization' section: the most common candidate as default, every path explicit."""
        quantized = [e.candidate for e in self.entries if e.candidate is not None]
        if not quantized:
            raise QuantError("the plan quantizes no tensor: nothing to write as a quantized model")
        default = Counter(quantized).most_common(1)[0][0]
        section: dict[str, Any] = dict(default.as_config())
        for e in self.entries:
            c = e.candidate
            section[e.path] = False if c is None else c.as_config()
        return section

    # -- text --------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model, "method": self.method, "tensors": len(self.entries),
            "params": self.params, "real_bpw": round(self.real_bpw, 4), "size_bytes": self.size_bytes,
            "float_size_bytes": self.float_size_bytes,
            "budget_bpw": None if self.budget_bpw is None else round(self.budget_bpw, 4),
            "predicted_dkl": self.predicted_dkl, "lower_bound": self.lower_bound,
            "widths": {k: {"tensors": n, "params": p} for k, (n, p) in self.width_counts().items()},
            "notes": list(self.notes),
        }

    def summary_text(self) -> str:
        s = self.summary()
        lines = [f"plan {self.method} for {self.model}",
                 f"  real bpw {s['real_bpw']:.3f}  size {_mb(self.size_bytes)}"
                 f" ({100 * self.size_bytes / max(self.float_size_bytes, 1):.1f}% of float)"
                 + ("" if s["budget_bpw"] is None else f"  budget {s['budget_bpw']:.3f} bpw")]
        if self.predicted_dkl is not None:
            bound = "" if self.lower_bound is None else f"  (lower bound {self.lower_bound:.4g})"
            lines.append(f"  predicted ΔKL {self.predicted_dkl:.4g}{bound}")
        widths = ", ".join(f"{k}: {n}" for k, (n, _) in self.width_counts().items())
        lines.append(f"  tensors {len(self.entries)}: {widths}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    TABLE_HEADER = ("tensor", "params", "bits", "group", "mode", "ΔKL", "source")
    TABLE_RIGHT = frozenset({1, 2, 3, 5})

    def rows(self) -> list[tuple[str, ...]]:
        """The per-tensor rows under TABLE_HEADER: tensor, params, bits, group, mode, predicted ΔKL, source."""
        out = []
        for e in self.entries:
            c = e.candidate
            out.append((e.path, f"{e.params:,}", "float" if c is None else str(c.bits),
                        "-" if c is None else str(c.group_size), "-" if c is None else c.mode,
                        "-" if e.dkl is None else f"{e.dkl:.3g}", e.source))
        return out

    def table(self) -> str:
        """The per-tensor table as aligned plain text."""
        from ..library.format import table

        return table(self.TABLE_HEADER, self.rows(), right=set(self.TABLE_RIGHT))

    # -- JSON --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def save(self, path: Path) -> None:
        atomic.write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        raw = dict(raw)
        raw.pop("summary", None)
        if raw.get("version") != PLAN_VERSION:
            raise QuantError(f"plan schema {raw.get('version')} is not {PLAN_VERSION}")
        entries = [PlanEntry(**{**e, "shape": tuple(e["shape"])}) for e in raw.pop("entries")]
        return cls(**raw, entries=entries)

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise QuantError(f"cannot read plan {path}: {exc}") from exc


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.2f} MB"
