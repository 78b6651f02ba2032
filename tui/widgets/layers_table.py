"""The Layers tab's table, one row per tensor, fitted to its width: no sideways scrolling, even at 80 columns.

The allocation's columns come first (layer, tensor, parameters, the candidate chosen, the pin), then the
sensitivity scores (ΔKL) of as many candidates as the width leaves room for. A sensitivity table easily
has 18 candidates (widths 2-8 × group sizes 32/64/128): which score columns show is chosen by width
alone, so the columns stay put while the budget moves: one per width (mode and bits) first, at its middle
group size, spread evenly over the widths when not all fit; other group sizes only when room is left.
A resize refits them.
"""

from __future__ import annotations

from temper.core.library.format import human_params
from temper.core.quant.candidates import Candidate
from temper.core.quant.scores import SensitivityTable, TensorScores
from textual.widgets import DataTable

from .layers_heat import SHORT

FIXED = [("layer", "Layer"), ("tensor", "Tensor"), ("params", "Params"), ("chosen", "Chosen"), ("pin", "Pin")]
SCORE_CELLS = 7                  # "0.1234", "3.2e-04", "12.3456"; a header such as "2b g128"
TENSOR_CELLS = (6, 12)           # the tensor column's narrowest and widest


def score_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}" if value and value < 1e-3 else f"{value:.4f}"


def label(key: str) -> str:
    return key if key == "float" else str(Candidate.from_key(key))


def score_columns(keys: list[str], slots: int) -> list[str]:
    """The candidates given a score column when `slots` fit, in the table's order (module docstring)."""
    if slots >= len(keys):
        return list(keys)
    if slots <= 0:
        return []
    cands = {k: Candidate.from_key(k) for k in keys}
    widths: dict[tuple[str, int], list[str]] = {}
    for k in keys:
        widths.setdefault((cands[k].mode, cands[k].bits), []).append(k)
    firsts = sorted((sorted(ks, key=lambda k: cands[k].group_size)[len(ks) // 2] for ks in widths.values()),
                    key=lambda k: (cands[k].bits_per_weight(), k))
    if slots < len(firsts):           # evenly spread: the lowest, the highest, and between them
        picked = {firsts[len(firsts) // 2]} if slots == 1 else \
            {firsts[round(i * (len(firsts) - 1) / (slots - 1))] for i in range(slots)}
    else:
        picked = set(firsts)
        picked.update([k for k in keys if k not in picked][:slots - len(firsts)])
    return [k for k in keys if k in picked]


class LayersTable(DataTable):
    """Rows of a SensitivityTable with the allocation's choice and pins; columns refitted on resize."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.source: SensitivityTable | None = None
        self.shown: list[str] = []        # candidates with a score column
        self.chosen: dict[str, str] = {}  # path -> candidate key (or "float") the allocation chose
        self.pins: dict[str, str] = {}

    def _fixed_widths(self) -> dict[str, int]:
        keys = [*(self.source.candidates if self.source else []), "float"]
        tensors = self.source.tensors if self.source else []
        kinds = max((len(SHORT.get(t.kind, t.kind)) for t in tensors), default=0)
        layers = max((len(str(t.layer)) for t in tensors if t.layer is not None), default=0)
        choice = max(len(label(k)) for k in keys)
        return {"layer": max(len("Layer"), layers), "tensor": min(max(TENSOR_CELLS[0], kinds), TENSOR_CELLS[1]),
                "params": 6, "chosen": max(len("Chosen"), choice), "pin": max(len("Pin"), choice)}

    def _fitting(self) -> list[str]:
        """The score columns that fit beside the fixed ones (a vertical scrollbar's room always kept)."""
        if self.source is None:
            return []
        pad = 2 * self.cell_padding
        room = self.content_region.width - self.styles.scrollbar_size_vertical
        room -= sum(w + pad for w in self._fixed_widths().values())
        return score_columns(list(self.source.candidates), room // (SCORE_CELLS + pad))

    def show(self, source: SensitivityTable | None) -> None:
        """Every row again, with the columns that fit now; the cursor stays on its row."""
        self.source = source
        row = self.cursor_row
        self.clear(columns=True)
        self.shown = self._fitting()
        widths = self._fixed_widths()
        for key, title in FIXED:
            self.add_column(title, key=key, width=widths[key])
        for key in self.shown:
            self.add_column(label(key), key=key, width=SCORE_CELLS)
        for t in source.tensors if source else []:
            self.add(t)
        if self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1), animate=False)

    def add(self, t: TensorScores) -> None:
        self.add_row("–" if t.layer is None else str(t.layer), SHORT.get(t.kind, t.kind), human_params(t.params),
                     self._label_of(self.chosen, t.path), self._label_of(self.pins, t.path),
                     *[score_text(t.scores.get(k)) for k in self.shown], key=t.path)

    def scores_changed(self, path: str, scores: dict[str, float]) -> None:
        for k in self.shown:
            if k in scores:
                self.update_cell(path, k, score_text(scores[k]))

    def choose(self, chosen: dict[str, str], pins: dict[str, str]) -> None:
        """The allocation's choice and the pins, on every row."""
        self.chosen, self.pins = dict(chosen), dict(pins)
        for t in self.source.tensors if self.source else []:
            self.update_cell(t.path, "chosen", self._label_of(self.chosen, t.path))
            self.update_cell(t.path, "pin", self._label_of(self.pins, t.path))

    @staticmethod
    def _label_of(keys: dict[str, str], path: str) -> str:
        return label(keys[path]) if path in keys else ""

    def on_resize(self) -> None:
        if self.source is not None and self._fitting() != self.shown:
            self.show(self.source)
