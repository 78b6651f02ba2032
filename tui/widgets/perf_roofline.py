"""The roofline panel: measured decode tok/s against the bandwidth ceiling, as figures and as a plot of
decode tok/s vs bytes read per token with the ceiling curve (tok/s = bandwidth / bytes)."""

from __future__ import annotations

from typing import Any

from temper.core.bench.results import BenchResult
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot


def roofline_text(result: BenchResult | None) -> str:
    if result is None or not result.rows:
        return "Run a benchmark to see decode speed against the memory-bandwidth ceiling."
    bw = result.bandwidth
    table = f"{bw['table_gbs']:.0f} GB/s ({bw.get('chip')})" if bw.get("table_gbs") else "chip not in table"
    measured = f"{bw['measured_gbs']:.0f} GB/s" if bw.get("measured_gbs") else "not measured"
    lines = [f"bandwidth: table {table} · copy test {measured}"]
    for row in result.rows:
        rf = row.roofline
        if rf is None:
            continue
        parts = [f"{row.test}: {rf.decode_tps:.1f} tok/s, {rf.bytes_per_token / 1e9:.2f} GB/token"]
        if rf.pct_table is not None:
            parts.append(f"[b]{rf.pct_table:.0f}%[/] of {rf.ceiling_table:.0f} tok/s ceiling")
        if rf.pct_measured is not None:
            parts.append(f"{rf.pct_measured:.0f}% of measured-bandwidth ceiling")
        lines.append(" · ".join(parts))
    return "\n".join(lines)


def plot_points(results: list[BenchResult]) -> list[tuple[float, float, str]]:
    """(GB read per token, decode tok/s, label) for every row of every result."""
    points = []
    for r in results:
        for row in r.rows:
            if row.roofline and row.roofline.decode_tps == row.roofline.decode_tps:  # skip NaN
                points.append((row.roofline.bytes_per_token / 1e9, row.roofline.decode_tps,
                               f"{r.model.get('name', '?')} {row.test}"))
    return points


class PerfRoofline(Vertical):
    DEFAULT_CSS = """
    PerfRoofline { border: round $primary; padding: 0 1; height: 1fr; }
    PerfRoofline #roof-text { height: auto; }
    PerfRoofline PlotextPlot { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Roofline"
        self.history: list[BenchResult] = []

    def compose(self) -> ComposeResult:
        yield Static(roofline_text(None), id="roof-text")
        yield PlotextPlot(id="roof-plot")

    def show(self, result: BenchResult, *, remember: bool = True) -> None:
        if remember:
            self.history.append(result)
        self.query_one("#roof-text", Static).update(roofline_text(result))
        self.replot()

    def replot(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        points = plot_points(self.history)
        if not points:
            plot.refresh()
            return
        xs = [p[0] for p in points]
        lo, hi = min(xs) * 0.5, max(xs) * 1.5
        grid = [lo + (hi - lo) * i / 40 for i in range(41)]
        bw = self.history[-1].bandwidth
        # No legends: plotext's legend builder fails inside textual-plotext; the title names the marks.
        for key in ("table_gbs", "measured_gbs"):
            if bw.get(key):
                plt.plot(grid, [bw[key] / x for x in grid])
        plt.scatter(xs, [p[1] for p in points])
        plt.title("lines: ceiling (chip table, copy test) · dots: measured")
        plt.xlabel("GB read per token")
        plt.ylabel("decode tok/s")
        plt.ylim(0, max(max(p[1] for p in points) * 1.2,
                        min((bw.get("table_gbs") or 0) / lo, max(p[1] for p in points) * 4)))
        plot.refresh()
