"""A compact heat strip: one row per tensor kind, one cell per layer, coloured by sensitivity or bits.

Fits 80 columns: when there are more layers than cells, neighbouring layers share a cell (the worst
of them is shown). Tensors outside the blocks (embeddings, lm_head) get their own line.
"""

from __future__ import annotations

import math

from rich.text import Text
from temper.core.quant.scores import TensorScores
from textual.widget import Widget

KIND_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHORT = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
         "down_proj": "down", "embed_tokens": "embed", "lm_head": "lm_head"}
# Cool to hot; sensitivity 0..1 picks one of these.
HEAT = ["#2b6cb0", "#3f9fbf", "#4fb286", "#a3c14a", "#e0c040", "#e8903a", "#e0533a", "#c0262d"]
BITS = {2: "#c0262d", 3: "#e8903a", 4: "#e0c040", 5: "#a3c14a", 6: "#4fb286", 8: "#2b6cb0"}
LABEL = 6


def reference_key(keys: list[str]) -> str:
    """The candidate used to colour sensitivity: 4-bit if there is one, else the middle one."""
    four = [k for k in keys if ":4b:" in k]
    return four[len(four) // 2] if four else keys[len(keys) // 2]


def sensitivity_levels(tensors: list[TensorScores]) -> dict[str, float]:
    """Each tensor's damage at the reference candidate, log-scaled to 0..1 over the table."""
    keys = sorted({k for t in tensors for k in t.scores})
    if not keys:
        return {}
    ref = reference_key(keys)
    values = {t.path: max(t.scores.get(ref, 0.0), 1e-12) for t in tensors if t.scores}
    if not values:
        return {}
    lo, hi = math.log10(min(values.values())), math.log10(max(values.values()))
    span = hi - lo or 1.0
    return {p: (math.log10(v) - lo) / span for p, v in values.items()}


class LayersHeat(Widget):
    DEFAULT_CSS = """
    LayersHeat { height: auto; min-height: 3; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tensors: list[TensorScores] = []
        self.bits: dict[str, int] = {}
        self.mode = "sensitivity"

    def show(self, tensors: list[TensorScores], bits: dict[str, int] | None = None, mode: str | None = None) -> None:
        self.tensors = list(tensors)
        if bits is not None:
            self.bits = bits
        if mode is not None:
            self.mode = mode
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        kinds = {t.kind for t in self.tensors if t.layer is not None}
        return len(kinds) + 3 if self.tensors else 3

    def render(self) -> Text:
        if not self.tensors:
            return Text("(no scores: see the line above)", style="dim")
        width = max(self.size.width - LABEL - 1, 8)
        layers = sorted({t.layer for t in self.tensors if t.layer is not None})
        nl = (max(layers) + 1) if layers else 0
        per_cell = max(1, math.ceil(nl / width)) if nl else 1
        cells = math.ceil(nl / per_cell) if nl else 0
        levels = sensitivity_levels(self.tensors)
        grid: dict[tuple[str, int], list[TensorScores]] = {}
        others: list[TensorScores] = []
        for t in self.tensors:
            if t.layer is None:
                others.append(t)
            else:
                grid.setdefault((t.kind, t.layer // per_cell), []).append(t)
        kinds = [k for k in KIND_ORDER if any(key[0] == k for key in grid)]
        kinds += sorted({k for k, _ in grid} - set(kinds))
        out = Text()
        title = "sensitivity" if self.mode == "sensitivity" else "chosen bits"
        span = f"{nl} layers, {per_cell} per cell" if per_cell > 1 else f"{nl} layers"
        out.append(f"{'':<{LABEL}} {title} · {span}\n", style="dim")
        for kind in kinds:
            out.append(f"{SHORT.get(kind, kind)[:LABEL]:>{LABEL}} ", style="bold")
            for c in range(cells):
                group = grid.get((kind, c))
                out.append_text(self._cell(group, levels))
            out.append("\n")
        if others:
            out.append(f"{'':<{LABEL}} ")
            for t in others:
                out.append_text(self._cell([t], levels))
                out.append(f" {SHORT.get(t.kind, t.kind)}  ", style="dim")
            out.append("\n")
        out.append_text(self._legend())
        return out

    def _cell(self, group: list[TensorScores] | None, levels: dict[str, float]) -> Text:
        if not group:
            return Text("·", style="dim")
        if self.mode == "bits":
            bits = [self.bits[t.path] for t in group if t.path in self.bits]
            if not bits:
                return Text("?", style="dim")
            b = min(bits)
            return Text(str(b) if b < 10 else "F", style=f"bold #000000 on {BITS.get(b, '#888888')}")
        level = max((levels.get(t.path, 0.0) for t in group), default=0.0)
        colour = HEAT[min(int(level * len(HEAT)), len(HEAT) - 1)]
        return Text("█", style=colour)

    def _legend(self) -> Text:
        legend = Text(f"{'':<{LABEL}} ")
        if self.mode == "bits":
            for b, colour in BITS.items():
                legend.append(f" {b} ", style=f"bold #000000 on {colour}")
            legend.append("  m: sensitivity", style="dim")
        else:
            for colour in HEAT:
                legend.append("█", style=colour)
            legend.append(" ΔKL at 4b, low→high  m: bits", style="dim")
        return legend
