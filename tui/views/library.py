"""The Library tab: every local model in a sortable, filterable table, a details pane, and actions.

The list comes from the app's one cached library scan (core/library/service.py, shared with the Quantize
tab): a scan reads headers only (no MLX) and always runs in a thread worker, its result comes back as a
message. `r` forces a fresh scan; deletes, imports, downloads and published quantizations invalidate the cache
in the core, and showing the tab again picks that up.
"""

from __future__ import annotations

from pathlib import Path

from temper.core.library.format import human_bytes
from temper.core.library.model_info import ModelInfo
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static, TabbedContent

from ..messages import OpenModel
from ..screens.delete_model import ConfirmDelete
from ..screens.hub_search import HubSearch
from ..typed_app import TemperNode
from ..widgets.library_rows import (
    COLUMNS,
    LARGEST_FIRST,
    SORT_KEYS,
    details_text,
    display_path,
    header_label,
    matches,
    row_cells,
)


class ScanFinished(Message):
    def __init__(self, models: list[ModelInfo], error: str | None = None, generation: int = 0) -> None:
        super().__init__()
        self.models = models
        self.error = error
        self.generation = generation


class ImportProgress(Message):
    def __init__(self, message: str, fraction: float) -> None:
        super().__init__()
        self.message, self.fraction = message, fraction

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ImportProgress)


class ImportFinished(Message):
    def __init__(self, name: str, path: Path | None, error: str | None = None) -> None:
        super().__init__()
        self.name, self.path, self.error = name, path, error


class ModelDeleted(Message):
    def __init__(self, info: ModelInfo, freed: int | None, error: str | None = None) -> None:
        super().__init__()
        self.info = info
        self.freed = freed
        self.error = error


class LibraryView(TemperNode, Vertical):
    DEFAULT_CSS = """
    LibraryView { height: 1fr; }
    LibraryView #library-bar { height: 3; }
    LibraryView #library-filter { width: 1fr; }
    LibraryView #library-status { width: auto; padding: 1 1 0 1; color: $text-muted; }
    LibraryView #library-table { height: 1fr; }
    LibraryView #library-details { height: auto; max-height: 9; padding: 0 1; border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="library.filter"),
        Binding("r", "rescan", "Rescan", id="library.rescan", show=False),
        Binding("o", "cycle_sort", "Sort", id="library.sort", show=False),
        Binding("O", "reverse_sort", "Reverse", show=False, id="library.sort_reverse"),
        Binding("c", "open('chat')", "Chat", id="library.chat"),
        Binding("q", "open('quantize')", "Quantize", id="library.quantize"),
        Binding("d", "delete", "Delete", id="library.delete"),
        Binding("s", "search", "Hub", id="library.search"),
        Binding("i", "import_gguf", "Import", tooltip="Import GGUF", id="library.import"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.models: list[ModelInfo] = []
        self.shown: list[ModelInfo] = []
        self.sort_key = "name"
        self.sort_reverse = False
        self.columns = list(COLUMNS)   # those shown (set at mount from the width)
        self.loaded = False  # the first scan came back (tests wait on it)
        self.importing = None  # the engine Job of a running GGUF import
        self.select_after_scan: Path | None = None
        self._generation = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="library-bar"):
            yield Input(placeholder="/ filter by name, arch, quant, source", id="library-filter")
            yield Static("scanning…", id="library-status")
        table = DataTable(id="library-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(details_text(None), id="library-details")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._fit_columns(self.app.size.width)
        table.focus()
        model = self.app.model
        if model:  # `temper --model PATH` / `temper demo`: show that model highlighted
            self.select_model(model)
        self.rescan(refresh=False)

    def on_show(self) -> None:
        """Back on this tab: a model written meanwhile (a quantize's publish, a float copy) shows up. The cached
        scan is reused when nothing changed, so the table (and its cursor) stays as it was."""
        if self.loaded:
            self.rescan(refresh=False)

    def _fit_columns(self, width: int) -> bool:
        """Below 100 columns Vis and Source (both in the details pane) make room for the rest. True when
        the shown columns changed (they are laid out again)."""
        wanted = [c for c in COLUMNS if width >= 100 or c[0] not in ("vision", "source")]
        table = self.query_one(DataTable)
        if wanted == self.columns and table.columns:
            return False
        self.columns = wanted
        table.clear(columns=True)
        for key, label, _ in self.columns:
            table.add_column(label + "  ", key=key)  # room for the sort arrow
        return True

    def on_resize(self, event: events.Resize) -> None:
        # after the table's own resize handling: laid out from inside this handler, a terminal's resize (tmux,
        # 100 -> 80 columns) left every column as wide as its header; Pilot's resize did not show it
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        current = self.highlighted                 # laying the columns out again moves the cursor to the top
        if self._fit_columns(self.app.size.width) and self.loaded:
            self.select_after_scan = current.path if current is not None else None
            self.refresh_table()

    # scanning -------------------------------------------------------------------------------------
    def rescan(self, refresh: bool = True) -> None:
        """Show the library: the cached scan at once when it is current, else a scan in a worker.
        `refresh` (the r key) scans again whatever the cache holds (changes made outside temper)."""
        self._generation += 1
        cached = None if refresh else self.app.library.cached()
        if cached is not None:
            self.on_scan_finished(ScanFinished(cached, generation=self._generation))
            return
        self.query_one("#library-status", Static).update("scanning…")
        self._scan_worker(self._generation, refresh)

    @work(thread=True, exclusive=True, group="library-scan", exit_on_error=False)
    def _scan_worker(self, generation: int, refresh: bool) -> None:
        try:
            self.post_message(ScanFinished(self.app.library.models(refresh=refresh), generation=generation))
        except Exception as exc:  # a scan never takes the app down
            self.post_message(ScanFinished([], error=" ".join(str(exc).split()), generation=generation))

    def on_scan_finished(self, message: ScanFinished) -> None:
        if message.generation != self._generation:  # an older scan finishing late: a newer one is coming
            return
        self.models = message.models
        self.loaded = True
        if message.error:
            self.notify(message.error, title="Library scan failed", severity="error")
        self.refresh_table()

    # table ----------------------------------------------------------------------------------------
    def refresh_table(self) -> None:
        table = self.query_one(DataTable)
        current = self.highlighted
        text = self.query_one("#library-filter", Input).value.strip().lower()
        key = dict((c[0], c[2]) for c in COLUMNS)[self.sort_key]
        self.shown = sorted((m for m in self.models if matches(m, text)), key=lambda m: (key(m), m.name.lower()),
                            reverse=self.sort_reverse)
        table.clear()
        name_width = 30 if len(self.columns) == len(COLUMNS) else 26      # narrow: Vis and Source are gone too
        for m in self.shown:
            cells = dict(zip([c[0] for c in COLUMNS], row_cells(m, name_width), strict=True))
            table.add_row(*(cells[c[0]] for c in self.columns), key=str(m.path))
        for key_name, label, _ in self.columns:
            descending = (key_name in LARGEST_FIRST) != self.sort_reverse
            arrow = (" ▼" if descending else " ▲") if key_name == self.sort_key else "  "
            table.columns[key_name].label = header_label(label + arrow)
        wanted = self.select_after_scan
        paths = [m.path for m in self.shown]
        if wanted is not None and wanted not in paths:  # same folder spelled differently
            resolved = [p.resolve() for p in paths]
            wanted = paths[resolved.index(wanted.resolve())] if wanted.resolve() in resolved else None
        if wanted is not None and wanted in paths:
            table.move_cursor(row=paths.index(wanted))
            self.select_after_scan = None
        elif current is not None and current in self.shown:
            table.move_cursor(row=self.shown.index(current))
        broken = sum(1 for m in self.models if m.error)
        status = f"{len(self.shown)}/{len(self.models)} models" + (f" · {broken} broken" if broken else "")
        self.query_one("#library-status", Static).update(status)
        self._show_details()

    def select_model(self, path: str | Path) -> None:
        """Highlight the model at `path` (now, or when the scan in flight comes back)."""
        self.select_after_scan = Path(path)
        if self.loaded:
            self.refresh_table()

    @property
    def highlighted(self) -> ModelInfo | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def _show_details(self) -> None:
        self.query_one("#library-details", Static).update(details_text(self.highlighted))

    @on(DataTable.RowHighlighted, "#library-table")
    def _row_highlighted(self) -> None:
        self._show_details()

    @on(DataTable.HeaderSelected, "#library-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
        self.sort_key = key
        self.refresh_table()

    @on(Input.Changed, "#library-filter")
    def _filter_changed(self) -> None:
        self.refresh_table()

    @on(Input.Submitted, "#library-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def key_escape(self) -> None:
        if self.query_one("#library-filter", Input).has_focus:
            self.query_one(DataTable).focus()
        elif self.importing is not None:
            self.importing.cancel()
            self.query_one("#library-status", Static).update("cancelling import…")

    # actions --------------------------------------------------------------------------------------
    def action_focus_filter(self) -> None:
        self.query_one("#library-filter", Input).focus()

    def action_rescan(self) -> None:
        self.rescan()

    def action_cycle_sort(self) -> None:
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.sort_reverse = False
        self.refresh_table()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_table()

    def action_open(self, target: str) -> None:
        m = self.highlighted
        if m is None:
            self.notify("no model selected", severity="warning")
            return
        if m.error:
            self.notify(m.error, title=f"{m.name} cannot be opened", severity="error")
            return
        if m.details.get("gguf"):
            self.notify("a GGUF file: press i to import it as an MLX model first", severity="warning")
            return
        self.post_message(OpenModel(m.path, target))
        try:
            self.app.query_one(TabbedContent).active = target
        except Exception:  # no tabs (a test mounting the view alone)
            pass

    def action_delete(self) -> None:
        m = self.highlighted
        if m is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete_worker(m)

        self.app.push_screen(ConfirmDelete(m.name, human_bytes(m.size_bytes), display_path(m.path)), confirmed)

    @work(thread=True, exclusive=True, group="library-delete", exit_on_error=False)
    def _delete_worker(self, m: ModelInfo) -> None:
        from temper.core.library.delete import delete_model

        try:
            self.post_message(ModelDeleted(m, delete_model(m.path)))
        except Exception as exc:
            self.post_message(ModelDeleted(m, None, error=" ".join(str(exc).split())))

    def on_model_deleted(self, message: ModelDeleted) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.info.name} not deleted", severity="error")
            return
        self.notify(f"deleted {message.info.name} ({human_bytes(message.freed or 0)} freed)")
        self.rescan(refresh=False)         # delete_model invalidated the cached scan

    def action_import_gguf(self) -> None:
        m = self.highlighted
        if self.importing is not None:
            self.notify("an import is already running (Esc cancels it)", severity="warning")
            return
        if m is None or not m.details.get("gguf"):       # no GGUF highlighted: ask for the file
            from ..widgets.quant_dialogs import PathPrompt

            self.app.push_screen(PathPrompt("Import a GGUF file (path, Enter imports, Esc cancels):", ""),
                                 self._import_typed)
            return
        if m.error:
            self.notify(m.error, title="cannot import", severity="error")
            return
        self._import_worker(m.path, m.name)

    def _import_typed(self, typed: str | None) -> None:
        if not typed:
            return
        path = Path(typed).expanduser()
        if not path.is_file() or path.suffix.lower() != ".gguf":
            self.notify(f"{typed}: not a .gguf file", title="cannot import", severity="error")
            return
        self._import_worker(path, path.stem)

    @work(thread=True, exclusive=True, group="library-import", exit_on_error=False)
    def _import_worker(self, path: Path, name: str) -> None:
        """Waits on the engine job (the import itself runs MLX on the engine thread)."""
        from temper.core.engine import Cancelled, Failed, Finished, Progress
        from temper.core.library.gguf_import import import_gguf

        def job_fn(ctx):
            return import_gguf(path, name=name, check=ctx.check, progress=lambda msg, f: ctx.emit(
                Progress(ctx.job_id, "import", int(f * 100), 100, msg)))

        job = self.app.engine.submit(job_fn, kind="gguf-import")
        self.importing = job
        try:
            for event in job.events():
                if isinstance(event, Progress):
                    self.post_message(ImportProgress(event.message, event.done / 100))
                elif isinstance(event, Finished):
                    self.post_message(ImportFinished(name, event.result))
                elif isinstance(event, Failed):
                    self.post_message(ImportFinished(name, None, error=event.message))
                elif isinstance(event, Cancelled):
                    self.post_message(ImportFinished(name, None, error="import cancelled"))
        finally:
            self.importing = None

    def on_import_progress(self, message: ImportProgress) -> None:
        self.query_one("#library-status", Static).update(
            f"importing {message.fraction * 100:3.0f}% {message.message} (Esc cancels)")

    def on_import_finished(self, message: ImportFinished) -> None:
        if message.error or message.path is None:
            self.notify(message.error or "import failed", title=f"{message.name} not imported",
                        severity="error")
            self.refresh_table()
            return
        self.notify(f"imported {message.name} as {display_path(message.path)}")
        self.select_after_scan = message.path
        self.rescan(refresh=False)         # the import's atomic publish invalidated the cached scan

    def action_search(self) -> None:
        def done(path: Path | None) -> None:
            if path is not None:
                self.notify(f"downloaded to {display_path(path)}")
                self.rescan(refresh=False)     # the download invalidated the cached scan

        self.app.push_screen(HubSearch(), done)
