"""The budget slider (real bits per weight) and the predicted-KL-vs-bpw frontier plot."""

from __future__ import annotations

import math

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class BudgetSlider(Widget, can_focus=True):
    """←/→ move by 0.05 bpw, PgUp/PgDn by 0.25, Home/End to the ends."""

    DEFAULT_CSS = """
    BudgetSlider { height: 1; width: 1fr; min-width: 20; }
    BudgetSlider:focus { text-style: bold; }
    """
    BINDINGS = [
        Binding("left", "move(-0.05)", "-0.05", id="layers.budget.down", show=False),
        Binding("right", "move(0.05)", "+0.05", id="layers.budget.up", show=False),
        Binding("pagedown", "move(-0.25)", show=False, id="layers.budget.down_big"),
        Binding("pageup", "move(0.25)", show=False, id="layers.budget.up_big"),
        Binding("home", "move(-100)", show=False, id="layers.budget.min"),
        Binding("end", "move(100)", show=False, id="layers.budget.max"),
    ]

    value: reactive[float] = reactive(4.5)

    class Changed(Message):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

    def __init__(self, value: float = 4.5, low: float = 2.0, high: float = 8.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.low, self.high = low, high
        self.set_reactive(BudgetSlider.value, value)

    def set_range(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.set_value(min(max(self.value, low), high), notify=False)

    def set_value(self, value: float, notify: bool = True) -> None:
        value = round(min(max(value, self.low), self.high), 2)
        if value != self.value:
            self.value = value
            if notify:
                self.post_message(self.Changed(value))

    def action_move(self, delta: float) -> None:
        self.set_value(self.value + delta)

    def render(self) -> Text:
        width = max(self.size.width - 2, 4)
        frac = (self.value - self.low) / ((self.high - self.low) or 1)
        pos = min(int(round(frac * (width - 1))), width - 1)
        text = Text("◀", style="dim")
        text.append("━" * pos, style="bold #4fb286")
        text.append("●", style="bold")
        text.append("━" * (width - pos - 1), style="dim")
        text.append("▶", style="dim")
        return text


class FrontierPlot(Widget):
    """Predicted KL (log scale) against real bpw; the frontier as dots, the current plan as ●."""

    DEFAULT_CSS = """
    FrontierPlot { height: 9; width: 32; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points: list[tuple[float, float]] = []
        self.current: tuple[float, float] | None = None

    def show(self, points: list[tuple[float, float]], current: tuple[float, float] | None) -> None:
        self.points = sorted(points)
        self.current = current
        self.refresh()

    def render(self) -> Text:
        pts = [p for p in self.points if p[1] > 0]
        if self.current and self.current[1] > 0:
            pts_all = pts + [self.current]
        else:
            pts_all = pts
        if len(pts_all) < 2:
            return Text("predicted KL vs bpw\n(needs scores)", style="dim")
        label = 7
        w = max(self.size.width - label - 2, 8)
        h = max(self.size.height - 2, 3)
        xs = [p[0] for p in pts_all]
        ys = [math.log10(p[1]) for p in pts_all]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        xspan, yspan = (x1 - x0) or 1.0, (y1 - y0) or 1.0
        grid = [[" "] * w for _ in range(h)]

        def cell(x: float, kl: float) -> tuple[int, int]:
            col = int(round((x - x0) / xspan * (w - 1)))
            row = int(round((y1 - math.log10(kl)) / yspan * (h - 1)))
            return row, col

        for x, kl in pts:
            r, c = cell(x, kl)
            grid[r][c] = "·"
        cur = cell(*self.current) if self.current and self.current[1] > 0 else None
        out = Text("predicted KL vs bpw\n", style="dim")
        for r in range(h):
            tick = _tick(10 ** y1) if r == 0 else (_tick(10 ** y0) if r == h - 1 else "")
            out.append(f"{tick:>{label - 1}} │", style="dim")
            for c in range(w):
                if cur == (r, c):
                    out.append("●", style="bold #e0533a")
                else:
                    out.append(grid[r][c], style="#4fb286")
            out.append("\n")
        axis = f"{x0:.2f}".ljust(w // 2) + f"{x1:.2f} bpw".rjust(w - w // 2)
        out.append(" " * label + axis, style="dim")
        return out


def _tick(value: float) -> str:
    """A short axis label (at most 6 characters)."""
    return f"{value:.2g}" if value >= 0.01 else f"{value:.0e}".replace("e-0", "e-")
