"""Search the Hugging Face Hub and download a model with a progress bar. Esc cancels or closes.

Hub I/O is not MLX work, so it runs in thread workers; results and progress come back as messages.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from temper.core.library.format import human_bytes
from temper.core.library.hub import HubModel, download, search
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, ProgressBar, Static


class HubResults(Message):
    def __init__(self, query: str, models: list[HubModel], error: str | None = None) -> None:
        super().__init__()
        self.query, self.models, self.error = query, models, error


class DownloadProgress(Message):
    def __init__(self, done: int, total: int, name: str) -> None:
        super().__init__()
        self.done, self.total, self.name = done, total, name

    def can_replace(self, message: Message) -> bool:  # a flood of chunks merges into the latest
        return isinstance(message, DownloadProgress)


class DownloadFinished(Message):
    def __init__(self, repo_id: str, path: Path | None, error: str | None = None, cancelled: bool = False) -> None:
        super().__init__()
        self.repo_id, self.path, self.error, self.cancelled = repo_id, path, error, cancelled


class HubSearch(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    HubSearch { align: center middle; }
    HubSearch > Vertical { width: 90; max-width: 98%; height: 22; max-height: 95%; border: thick $primary;
                           background: $surface; padding: 0 1; }
    HubSearch #hub-results { height: 1fr; }
    HubSearch #hub-status { height: 2; color: $text-muted; }
    HubSearch ProgressBar { width: 1fr; display: none; }
    HubSearch ProgressBar.-active { display: block; }
    """
    BINDINGS = [
        Binding("escape", "close", "Cancel / close", id="library.hub.close"),
        Binding("ctrl+t", "toggle_mlx", "MLX only / all", id="library.hub.mlx_only"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.results: list[HubModel] = []
        self.cancel = threading.Event()
        self.downloading: str | None = None
        self.mlx_only = True

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title(), id="hub-title")
            yield Input(placeholder="model name, e.g. gemma-3 4bit", id="hub-query")
            yield DataTable(id="hub-results", cursor_type="row")
            yield ProgressBar(id="hub-progress", show_eta=False)
            yield Static("", id="hub-status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Model", "Downloads", "Likes", "Task")
        self.query_one("#hub-query", Input).focus()

    def _title(self) -> str:
        kind = "MLX models" if self.mlx_only else "all models"
        return f"[b]Hugging Face Hub[/b] · {kind} (ctrl+t) · Enter: search / download · Esc: cancel"

    def action_toggle_mlx(self) -> None:
        self.mlx_only = not self.mlx_only
        self.query_one("#hub-title", Static).update(self._title())
        query = self.query_one("#hub-query", Input).value
        if query.strip() and not self.downloading:
            self._search(query)

    def _status(self, text: str) -> None:
        self.query_one("#hub-status", Static).update(text)

    @on(Input.Submitted, "#hub-query")
    def _submit(self, event: Input.Submitted) -> None:
        if self.downloading:
            return
        self._status(f"searching {event.value!r}…")
        self._search(event.value)

    @work(thread=True, exclusive=True, group="hub-search", exit_on_error=False)
    def _search(self, query: str) -> None:
        try:
            self.post_message(HubResults(query, search(query, mlx_only=self.mlx_only)))
        except Exception as exc:
            self.post_message(HubResults(query, [], error=" ".join(str(exc).split())))

    def on_hub_results(self, message: HubResults) -> None:
        self.results = message.models
        table = self.query_one(DataTable)
        table.clear()
        for m in message.models:
            table.add_row(m.id, f"{m.downloads:,}", str(m.likes), m.pipeline_tag or "-", key=m.id)
        if message.error:
            self._status(f"[red]{message.error}[/red]")
        else:
            self._status(f"{len(message.models)} result(s) for {message.query!r}"
                         + (" · ↓ then Enter to download" if message.models else ""))
            if message.models:
                table.focus()

    @on(DataTable.RowSelected, "#hub-results")
    def _start_download(self, event: DataTable.RowSelected) -> None:
        if self.downloading or event.cursor_row >= len(self.results):
            return
        repo = self.results[event.cursor_row].id
        self.downloading = repo
        self.cancel.clear()
        bar = self.query_one(ProgressBar)
        bar.add_class("-active")
        bar.update(total=None, progress=0)
        self._status(f"downloading {repo}… (Esc cancels)")
        self._download(repo)

    @work(thread=True, exclusive=True, group="hub-download", exit_on_error=False)
    def _download(self, repo: str) -> None:
        last = [0.0]

        def progress(done: int, total: int, name: str) -> None:
            now = time.monotonic()
            if now - last[0] > 0.1 or done >= total:
                last[0] = now
                self.post_message(DownloadProgress(done, total, name))

        try:
            path = download(repo, progress=progress, cancelled=self.cancel.is_set)
            self.post_message(DownloadFinished(repo, path))
        except Exception as exc:
            cancelled = self.cancel.is_set()
            self.post_message(DownloadFinished(repo, None, error=" ".join(str(exc).split()), cancelled=cancelled))

    def on_download_progress(self, message: DownloadProgress) -> None:
        self.query_one(ProgressBar).update(total=max(message.total, 1), progress=message.done)
        self._status(f"{self.downloading}: {human_bytes(message.done)} of {human_bytes(message.total)} · "
                     f"{message.name} · Esc cancels")

    def on_download_finished(self, message: DownloadFinished) -> None:
        self.downloading = None
        self.query_one(ProgressBar).remove_class("-active")
        if message.path is not None:
            self.dismiss(message.path)
        elif message.cancelled:
            self._status("download cancelled: partial files are kept, downloading again resumes")
        else:
            self._status(f"[red]{message.error}[/red]")

    def action_close(self) -> None:
        if self.downloading:
            self.cancel.set()
            self._status("cancelling…")
        else:
            self.dismiss(None)
