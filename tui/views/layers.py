"""The Layers tab: per-tensor sensitivity filling in live, the bits the allocator chose, and the budget.

Scores arrive as engine events from the sensitivity pass (any event with `path` and `scores`), or from
a saved table. Moving the budget (slider or typed bpw) re-runs the allocator on the saved scores at
once; `p` pins the selected tensor to a candidate (cycling through them), `u` unpins, `m` switches the
heat strip between sensitivity and chosen bits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from temper.core.engine.events import Cancelled, Failed, Finished, Progress
from temper.core.errors import TemperError
from temper.core.library.format import human_duration
from temper.core.quant.candidates import Candidate
from temper.core.quant.scores import SensitivityTable, TensorScores
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from ..bridge import EngineEvent
from ..quant_client import Allocation, human_bytes, tab_is_active
from ..typed_app import TemperNode
from ..widgets.layers_budget import BudgetSlider, FrontierPlot
from ..widgets.layers_heat import LayersHeat
from ..widgets.layers_table import LayersTable

if TYPE_CHECKING:
    from temper.core.quant.sensitivity import LayerScored


class LayersView(TemperNode, Vertical):
    DEFAULT_CSS = """
    LayersView #layers-budget { height: 1; padding: 0 1; }
    LayersView #layers-budget Label { width: auto; padding-right: 1; }
    LayersView #layers-bpw { width: 8; }
    LayersView #layers-status { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    LayersView #layers-top { height: auto; max-height: 12; padding: 0 1; }
    LayersView LayersHeat { width: 1fr; }
    LayersView LayersTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("p", "pin", "Pin", id="layers.pin"),
        Binding("u", "unpin", "Unpin", id="layers.unpin"),
        Binding("m", "toggle_heat", "Heat", tooltip="Heat: sens/bits", id="layers.heat_mode"),
        Binding("b", "focus_budget", "Budget", id="layers.budget"),
        Binding("s", "measure", "Measure", tooltip="Measure now", id="layers.measure"),
        Binding("f", "open_float_copy", "Float copy", id="layers.float_copy", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.table: SensitivityTable | None = None
        self.pins: dict[str, str] = {}
        self.alloc: Allocation | None = None
        self.frontier: list[tuple[float, float]] = []
        self.live_job: int | None = None
        self.heat_mode = "sensitivity"
        self.model_path: str | None = None    # the model the table (or the explanation) is for
        self.measure_job: int | None = None
        self.explain = ""                     # why there is no table, and what to do
        self.float_copy: str | None = None
        self.can_measure = False              # the active model is a float model

    def compose(self) -> ComposeResult:
        with Horizontal(id="layers-budget"):
            yield Label("Budget")
            yield BudgetSlider(id="layers-slider")
            yield Input("4.5", compact=True, id="layers-bpw", restrict=r"[0-9.]*")
            yield Label(" bpw")
        yield Static("", id="layers-status")
        with Horizontal(id="layers-top"):
            yield LayersHeat(id="layers-heat")
            yield FrontierPlot(id="layers-plot")
        yield LayersTable(id="layers-table")

    def on_mount(self) -> None:
        self._status()
        self.app.follow_jobs("quantize", self)       # scores of whichever quantize job runs, live
        self._follow_active_model()

    def _follow_active_model(self) -> None:
        """Show the active model's saved scores; without any, say why and what to do (one key)."""
        active = str(self.app.model) if self.app.model else None
        if active == self.model_path or self.measure_job is not None or self.live_job is not None:
            return
        self.model_path, self.explain, self.float_copy, self.can_measure = active, "", None, False
        client = self.app.quant_client
        table = client.saved_table(active) if active else None
        if table is not None:
            self.can_measure = True
            self.set_table(table)
            return
        if not active:
            self.explain = "No model: open one from the Library (F1), or quantize one: its scores show here."
        else:
            try:
                model = client.model(active)
            except TemperError as exc:
                model, self.explain = None, f"{active}: {exc}"
            if model is not None and model.quantized:
                self.float_copy = client.float_copy_of(model)
                self.explain = (f"{model.name} is already quantized ({model.quantization}): sensitivity is measured "
                                "on a float model. " + (
                                    f"Press f to open its float copy {Path(self.float_copy).name}." if self.float_copy
                                    else "Make a float copy in the Quantize tab (step 1, key f), then open it here."))
            elif model is not None:
                self.can_measure = True
                self.explain = (f"No sensitivity scores for {model.name} yet: press s to measure them now (a job "
                                "with progress; a quantize run also saves them).")
        self._status()

    def action_measure(self) -> None:
        if self.measure_job is not None or self.live_job is not None:
            self.notify("A sensitivity pass is already running", severity="warning")
            return
        if not (self.model_path and self.can_measure):
            self.notify(self.explain or "Nothing to measure", severity="warning", timeout=8)
            return
        client = self.app.quant_client
        try:
            job = client.measure(self.model_path, client.request_from_profile(self.app.profile).settings())
        except TemperError as exc:
            self.notify(str(exc), severity="error", title="Sensitivity")
            return
        self.app.own_job(job.id, self)
        self.measure_job = job.id
        self._status("measuring sensitivity: starting…")

    def action_open_float_copy(self) -> None:
        if self.float_copy:
            self.app.open_model(self.float_copy, "layers")
            self._follow_active_model()

    def on_show(self) -> None:
        self._follow_active_model()

        def focus() -> None:      # checked when it happens: focus in a hidden pane would pull it forward
            if tab_is_active(self) and self.screen.focused is None:
                self.query_one(BudgetSlider).focus()

        self.call_after_refresh(focus)

    # -- data -------------------------------------------------------------------------------------------
    def set_table(self, table: SensitivityTable) -> None:
        """A complete table (saved or just finished): rebuild everything and allocate."""
        self.table = table
        self.live_job = None
        costs = [c.bits_per_weight(table.float_bytes) for c in table.candidate_objects()]
        slider = self.query_one(BudgetSlider)
        slider.set_range(round(min(costs) + 0.05, 2), round(max(costs), 2))
        self._rebuild_rows()
        self.reallocate(frontier=True)

    def _columns(self) -> list[str]:
        return list(self.table.candidates) if self.table else []

    def _rebuild_rows(self) -> None:
        rows = self.query_one(LayersTable)
        rows.chosen, rows.pins = (self.alloc.choice if self.alloc else {}), dict(self.pins)
        rows.show(self.table)
        self._refresh_heat()

    def add_scores(self, event: LayerScored) -> None:
        """A per-tensor event from a running sensitivity pass: its scores, and the tensor's facts for a new row."""
        scores = dict(event.scores)
        if self.table is None or self.live_job != event.job:
            keys = sorted(scores, key=lambda k: (Candidate.from_key(k).bits_per_weight(), k))
            self.table = SensitivityTable(model="(running)", model_hash="", calibration_hash="",
                                          candidates=keys, float_bytes=2)
            self.live_job = event.job
            self.alloc = None
            self._rebuild_rows()
        known = self.table.by_path()
        path = event.path
        params, shape, kind, layer = event.params, event.shape, event.kind or path.rsplit(".", 1)[-1], event.layer
        if layer is None and ".layers." in path:
            try:
                layer = int(path.split(".layers.")[1].split(".")[0])
            except ValueError:
                layer = None
        if path in known:
            known[path].scores.update(scores)
            self.query_one(LayersTable).scores_changed(path, scores)
        else:
            t = TensorScores(path, shape, params, kind, layer, scores)
            self.table.tensors.append(t)
            self.query_one(LayersTable).add(t)
        self._refresh_heat()
        self._status(f"live: {len(self.table.tensors)} tensors scored")

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if self.measure_job is not None and event.job == self.measure_job:
            self._measure_event(event)
            if isinstance(event, (Finished, Failed, Cancelled)):
                return
        from temper.core.quant.sensitivity import LayerScored  # (loaded once a job runs, not at start)

        if isinstance(event, LayerScored):
            self.add_scores(event)
        elif isinstance(event, Finished) and self.live_job == event.job:
            result = event.result if isinstance(event.result, dict) else {}
            table = None
            if result.get("sensitivity_file"):
                try:
                    table = SensitivityTable.load(result["sensitivity_file"])
                except TemperError:
                    table = None
            self.live_job = None
            if table is not None:
                self.set_table(table)
            elif self.table is not None and all(t.params for t in self.table.tensors):
                self.reallocate(frontier=True)

    def _measure_event(self, event) -> None:
        if isinstance(event, Progress) and event.total:
            self._status(self._measure_text(event))
        elif isinstance(event, Finished):
            self.measure_job = self.live_job = None
            if isinstance(event.result, SensitivityTable):
                self.set_table(event.result)
        elif isinstance(event, (Failed, Cancelled)):
            self.measure_job = self.live_job = None
            self._status(f"measuring stopped: {getattr(event, 'message', 'cancelled')}", error=True)

    # -- allocation -------------------------------------------------------------------------------------
    def reallocate(self, frontier: bool = False) -> None:
        if self.table is None or not self.table.tensors:
            return
        self._allocate(self.query_one(BudgetSlider).value, dict(self.pins), frontier)

    @work(thread=True, exclusive=True, group="layers-allocate", exit_on_error=False)
    def _allocate(self, bpw: float, pins: dict[str, str], frontier: bool) -> None:
        # Pure Python (no MLX): the allocator works on saved scores, so a thread worker is fine.
        client = self.app.quant_client
        table = self.table
        try:
            alloc = client.allocate(table, bpw, pins)
            points = client.frontier(table, pins) if frontier else None
        except TemperError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        except Exception as exc:  # a bug must show, not vanish with the worker
            self.app.call_from_thread(self._status, f"allocation failed: {type(exc).__name__}: {exc}", True)
            return
        self.app.call_from_thread(self._allocated, table, alloc, points)

    def _allocated(self, table: SensitivityTable, alloc: Allocation, points) -> None:
        if table is not self.table:
            return
        self.alloc = alloc
        if points is not None:
            self.frontier = points
        self.query_one(LayersTable).choose(alloc.choice, self.pins)
        self._refresh_heat()
        self.query_one(FrontierPlot).show(self.frontier, (alloc.bpw, alloc.kl))
        self._status()

    def _measure_text(self, event: Progress) -> str:
        """"measuring sensitivity 12/227 (5%) · ETA 3m 10s · fisher: sequence 12/16": one count, the core's
        ETA (`eta_s`), then what the pass is doing."""
        eta = (event.data or {}).get("eta_s")
        parts = [f"measuring sensitivity {event.done}/{event.total} ({100 * event.done // event.total}%)"]
        if eta is not None and event.done < event.total:
            parts.append(f"ETA {human_duration(eta)}")
        if event.message:
            parts.append(event.message)
        return " · ".join(parts)

    def _status(self, message: str = "", error: bool = False) -> None:
        status = self.query_one("#layers-status", Static)
        if error:
            status.update(f"[red]{message}[/red]")
            return
        if self.alloc is not None:
            text = (f"→ {self.alloc.bpw:.3f} bpw · {human_bytes(self.alloc.size_bytes)} · "
                    f"predicted KL {self.alloc.kl:.4f} · {len(self.pins)} pinned")
        elif self.table is None and self.measure_job is not None:
            text = ""                                      # measuring: the progress replaces the hint
        elif self.table is None:
            text = self.explain or "Waiting for sensitivity scores."
        else:
            text = ""
        status.update(" · ".join(x for x in (text, message) if x))

    def _refresh_heat(self) -> None:
        if self.table is None:
            return
        bits = {p: self.alloc.bits_of(p) for p in self.alloc.choice} if self.alloc else {}
        self.query_one(LayersHeat).show(self.table.tensors, bits, self.heat_mode)

    # -- user input -------------------------------------------------------------------------------------
    def on_budget_slider_changed(self, message: BudgetSlider.Changed) -> None:
        message.stop()
        self.query_one("#layers-bpw", Input).value = f"{message.value:g}"
        self.reallocate()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        try:
            value = float(message.value)
        except ValueError:
            self._status(f"{message.value!r} is not a number of bits per weight", True)
            return
        slider = self.query_one(BudgetSlider)
        if not slider.low <= value <= slider.high:
            self._status(f"{value:g} bpw is outside what these candidates can reach "
                         f"({slider.low:g}-{slider.high:g})", True)
            return
        slider.set_value(value, notify=False)
        self.reallocate()

    def _selected_path(self) -> str | None:
        dt = self.query_one(LayersTable)
        if self.table is None or dt.row_count == 0:
            return None
        return dt.coordinate_to_cell_key(dt.cursor_coordinate).row_key.value

    def action_pin(self) -> None:
        """Pin the selected tensor, cycling through the candidates (cheapest first)."""
        path = self._selected_path()
        if path is None:
            return
        keys = self._columns()
        current = self.pins.get(path) or (self.alloc.choice.get(path) if self.alloc else None)
        if path in self.pins and current in keys:
            nxt = keys[(keys.index(current) + 1) % len(keys)]
        else:
            nxt = current if current in keys else keys[0]
        self.pins[path] = nxt
        self.reallocate(frontier=True)

    def action_unpin(self) -> None:
        path = self._selected_path()
        if path is not None and self.pins.pop(path, None) is not None:
            self.reallocate(frontier=True)

    def action_toggle_heat(self) -> None:
        self.heat_mode = "bits" if self.heat_mode == "sensitivity" else "sensitivity"
        self._refresh_heat()

    def action_focus_budget(self) -> None:
        self.query_one(BudgetSlider).focus()

