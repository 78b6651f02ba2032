"""Run a benchmark suite from the Performance tab: model, pp / tg / n / batch inputs, progress, results table.

The widget only collects input and shows results; it asks for a run with a `PerfBench.Start` message
(the view submits the engine job) and is fed progress and results by the view.
"""

from __future__ import annotations

from typing import Any

from temper.core.bench.metrics import METRICS, Stat, fmt
from temper.core.bench.results import BenchResult
from temper.core.bench.runner import BenchConfig
from temper.core.errors import TemperError
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static

COLUMNS = ["test", "TTFT ms", "TPOT ms", "pp tok/s", "tg tok/s", "E2E s", "tok/s all", "peak GB", "% roof",
           "speedup"]


def parse_ints(text: str, name: str, *, allow_empty: bool = False) -> list[int]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts and not allow_empty:
        raise TemperError(f"{name}: give at least one number")
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise TemperError(f"{name}: {text!r} is not a comma-separated list of whole numbers") from None


def table_rows(result: BenchResult) -> list[list[str]]:
    rows = []
    for row in result.rows:
        st = row.stats
        pct = row.roofline.pct_table if row.roofline else None
        if pct is None and row.roofline:
            pct = row.roofline.pct_measured
        rows.append([row.test] + [fmt(name, st[name]).split(" ±")[0] for name in METRICS if name != "rss"]
                    + [f"{pct:.0f}%" if pct is not None else "-", ""])
    for b in result.batch:
        ttft = Stat.of(b.ttft).mean
        rows.append([f"{b.concurrency}x batch", f"{ttft * 1000:.0f}", "-", "-", f"{b.decode_tps:.1f}",
                     f"{b.e2e:.2f}", f"{b.throughput:.1f}", f"{b.peak_memory / 1e9:.2f}", "-",
                     f"{b.speedup:.2f}x" if b.speedup == b.speedup else "-"])
    return rows


class PerfBench(Vertical):
    DEFAULT_CSS = """
    PerfBench { border: round $primary; padding: 0 1; height: 1fr; }
    PerfBench Horizontal { height: 1; }
    PerfBench Input { width: 7; margin-right: 2; background: $boost; }
    PerfBench #bench-model { width: 1fr; }
    PerfBench #bench-pp { width: 13; }
    PerfBench #bench-batch { width: 11; }
    PerfBench Label { padding: 0 1 0 0; }
    PerfBench Button { min-width: 10; margin-left: 1; }
    PerfBench #bench-status { height: auto; color: $text-muted; }
    PerfBench DataTable { height: 1fr; }
    """

    class Start(Message):
        def __init__(self, model: str, config: BenchConfig) -> None:
            super().__init__()
            self.model = model
            self.config = config

    class Stop(Message):
        pass

    def __init__(self, model: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Benchmark"
        self.model = model
        self.running = False

    def compose(self) -> ComposeResult:
        # two one-line rows (compact fields): every field keeps its whole value in sight down to 80 columns
        with Horizontal():
            yield Label("model")
            yield Input(self.model, placeholder="model folder or cached Hub id", id="bench-model", compact=True)
            yield Button("Run", id="bench-run", variant="primary", compact=True)
            yield Button("Cancel", id="bench-cancel", disabled=True, compact=True)
        with Horizontal():
            yield Label("pp")
            yield Input("512", id="bench-pp", tooltip="prompt lengths, comma-separated", compact=True)
            yield Label("tg")
            yield Input("128", id="bench-tg", tooltip="tokens to generate, comma-separated", compact=True)
            yield Label("n")
            yield Input("3", id="bench-n", tooltip="counted runs per shape (after a warm-up)", compact=True)
            yield Label("batch")
            yield Input("", placeholder="1,2,4,8", id="bench-batch", tooltip="concurrent requests", compact=True)
            yield Label("kv")
            yield Input("", placeholder="auto", id="bench-kv", compact=True,
                        tooltip="KV-cache bits: 4 or 8, 0 = float, empty = the model's kv_config.json if any")
        yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="bench-progress")
        yield Static("", id="bench-status")
        yield DataTable(id="bench-table", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)

    def show_profile(self, bench: dict) -> None:
        """A profile's [bench] section fills the fields it sets (the rest keep what is there)."""
        fields = {"prompt_lengths": "#bench-pp", "gen_lengths": "#bench-tg", "repetitions": "#bench-n",
                  "batch_sizes": "#bench-batch", "kv_bits": "#bench-kv"}
        for key, selector in fields.items():
            value = bench.get(key)
            if value is None:
                continue
            text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
            if key == "batch_sizes" and text == "1":
                text = ""                    # one request: the plain single-stream rows
            self.query_one(selector, Input).value = text

    def read_config(self) -> tuple[str, BenchConfig]:
        model = self.query_one("#bench-model", Input).value.strip()
        if not model:
            raise TemperError("give a model folder or cached Hub id")
        n_text = self.query_one("#bench-n", Input).value.strip()
        if not n_text.isdigit():
            raise TemperError(f"n: {n_text!r} is not a whole number")
        config = BenchConfig(
            pp=parse_ints(self.query_one("#bench-pp", Input).value, "pp"),
            tg=parse_ints(self.query_one("#bench-tg", Input).value, "tg"),
            n=int(n_text),
            batch=parse_ints(self.query_one("#bench-batch", Input).value, "batch", allow_empty=True),
            kv_bits=(parse_ints(self.query_one("#bench-kv", Input).value, "kv", allow_empty=True) or [None])[0],
        )
        config.validate()
        return model, config

    @on(Button.Pressed, "#bench-run")
    @on(Input.Submitted)
    def run_pressed(self) -> None:
        if self.running:
            return
        try:
            model, config = self.read_config()
        except TemperError as exc:
            self.set_status(f"[red]{exc}[/]")
            return
        self.post_message(self.Start(model, config))

    @on(Button.Pressed, "#bench-cancel")
    def cancel_pressed(self) -> None:
        if self.running:
            self.post_message(self.Stop())

    def set_status(self, text: str) -> None:
        self.query_one("#bench-status", Static).update(text)

    def set_running(self, running: bool) -> None:
        self.running = running
        self.query_one("#bench-run", Button).disabled = running
        self.query_one("#bench-cancel", Button).disabled = not running
        if running:
            self.query_one(ProgressBar).update(total=None, progress=0)

    def progress(self, done: int, total: int | None, message: str) -> None:
        self.query_one(ProgressBar).update(total=total, progress=done)
        self.set_status(message)

    def show_result(self, result: BenchResult) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in table_rows(result):
            table.add_row(*row)
