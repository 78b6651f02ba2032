"""The Library tab, driven with the keyboard through Pilot, on fixture models in a temporary TEMPER_HOME."""

from __future__ import annotations

import asyncio
import functools
import shutil
from pathlib import Path

import pytest
from temper.core.library.folders import add_folder
from temper.core.paths import models_dir
from temper.tui.app import TemperApp
from temper.tui.messages import OpenModel
from temper.tui.screens.delete_model import ConfirmDelete
from temper.tui.screens.hub_search import HubSearch
from temper.tui.views.library import LibraryView
from textual.widgets import DataTable, Input, TabbedContent


def sync(fn):
    """Run an async Pilot test with asyncio.run (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class RecordingApp(TemperApp):
    """The real app, plus a record of the OpenModel messages the Library posts."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.opened: list[tuple[str, str]] = []

    def on_open_model(self, message: OpenModel) -> None:
        self.opened.append((message.path, message.target))


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_llama: Path, tiny_gemma4: Path) -> Path:
    """temper's models: tiny-llama; a user folder: tiny-gemma4 and a broken copy; an empty HF cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    shutil.copytree(tiny_llama, models_dir() / "tiny-llama")
    user = tmp_path / "user"
    shutil.copytree(tiny_gemma4, user / "tiny-gemma4")
    broken = shutil.copytree(tiny_llama, user / "broken-llama")
    (broken / "config.json").write_text("{oops")
    add_folder(user)
    return user


async def _loaded(pilot, app) -> LibraryView:
    view = app.query_one(LibraryView)
    for _ in range(200):
        if view.loaded and not any(w.is_running for w in app.workers):
            break
        await pilot.pause(0.05)
    assert view.loaded
    return view


def _names(view: LibraryView) -> list[str]:
    return [m.name for m in view.shown]


@sync
async def test_lists_models_with_details_and_broken_rows(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _loaded(pilot, app)
        table = app.query_one("#library-table", DataTable)
        assert table.row_count == 3 and app.focused is table
        assert _names(view) == ["broken-llama", "tiny-gemma4", "tiny-llama"]
        assert "not valid JSON" in str(app.query_one("#library-details").render())
        await pilot.press("down", "down")
        details = str(app.query_one("#library-details").render())
        assert "tiny-llama" in details and "32.000 real bits/weight" in details
        assert "3/3 models · 1 broken" in str(app.query_one("#library-status").render())


@sync
async def test_filter_and_sort_with_keys(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _loaded(pilot, app)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"gemma")
        assert _names(view) == ["tiny-gemma4"]
        await pilot.press("escape")
        assert isinstance(app.focused, DataTable)
        app.query_one("#library-filter", Input).value = ""
        await pilot.pause()
        await pilot.press("o", "o")  # name -> arch -> params (largest first)
        assert view.sort_key == "params"
        params = [m.parameters for m in view.shown]
        assert params == sorted(params, reverse=True)
        await pilot.press("O")
        assert [m.parameters for m in view.shown] == sorted(params)


@sync
async def test_open_in_chat_and_quantize(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("down", "down", "c")
        await pilot.pause()
        assert app.opened == [(str(models_dir() / "tiny-llama"), "chat")]
        assert app.query_one(TabbedContent).active == "chat"
        await pilot.press("f1")
        app.query_one("#library-table", DataTable).focus()
        await pilot.press("q")
        await pilot.pause()
        assert app.opened[-1] == (str(models_dir() / "tiny-llama"), "quantize")
        await pilot.press("f1")
        app.query_one("#library-table", DataTable).focus()
        await pilot.press("up", "up", "c")  # the broken row: refused with a notification, nothing posted
        await pilot.pause()
        assert len(app.opened) == 2 and app.query_one(TabbedContent).active == "library"


@sync
async def test_delete_asks_first(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    target = models_dir() / "tiny-llama"
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("down", "down", "d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("n")
        await pilot.pause()
        assert target.exists() and not isinstance(app.screen, ConfirmDelete)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        view = await _loaded(pilot, app)
        for _ in range(100):
            if "tiny-llama" not in _names(view):
                break
            await pilot.pause(0.05)
        assert not target.exists() and _names(view) == ["broken-llama", "tiny-gemma4"]


@sync
async def test_hub_search_offline_says_so_and_escape_closes(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, HubSearch)
        await pilot.press(*"smollm", "enter")
        for _ in range(100):
            status = str(app.screen.query_one("#hub-status").render())
            if "HF_HUB_OFFLINE" in status:
                break
            await pilot.pause(0.05)
        assert "HF_HUB_OFFLINE" in status
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HubSearch)


def test_library_snapshot(engine, library: Path, snap_compare) -> None:
    async def run_before(pilot) -> None:
        pilot.app.sub_title = "user@host"  # the real one names this machine
        await _loaded(pilot, pilot.app)
        await pilot.press("down", "down")  # tiny-llama: its path shows as temper:tiny-llama, stable

    assert snap_compare(RecordingApp(engine=engine), terminal_size=(100, 30), run_before=run_before)


@sync
async def test_hub_search_and_download_from_a_fake_hub(engine, library: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, tiny_llama: Path) -> None:
    import huggingface_hub.constants as constants
    from fake_hub import FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub("org/tiny-llama-mlx", tiny_llama) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        app = RecordingApp(engine=engine)
        async with app.run_test(size=(80, 24)) as pilot:
            view = await _loaded(pilot, app)
            await pilot.press("s", *"tiny", "enter")
            modal = app.screen
            assert isinstance(modal, HubSearch)
            for _ in range(100):
                if modal.results:
                    break
                await pilot.pause(0.05)
            assert [m.id for m in modal.results] == ["org/tiny-llama-mlx"]
            assert isinstance(app.focused, DataTable)
            await pilot.press("enter")
            for _ in range(200):
                if "org/tiny-llama-mlx" in _names(view):
                    break
                await pilot.pause(0.05)
            assert not isinstance(app.screen, HubSearch)
            downloaded = next(m for m in view.models if m.name == "org/tiny-llama-mlx")
            assert downloaded.source == "hf-cache" and downloaded.error is None


@sync
async def test_clicking_a_header_sorts_by_it(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _loaded(pilot, app)
        table = app.query_one("#library-table", DataTable)
        columns = list(table.columns.values())
        x = sum(c.get_render_width(table) for c in columns[:3]) + 2  # inside "Size"
        await pilot.click("#library-table", offset=(x, 0))
        await pilot.pause()
        assert view.sort_key == "size"
        sizes = [m.size_bytes for m in view.shown]
        assert sizes == sorted(sizes, reverse=True)
        assert "▼" in str(table.columns[columns[3].key].label)
        await pilot.click("#library-table", offset=(x, 0))
        await pilot.pause()
        assert view.sort_reverse and [m.size_bytes for m in view.shown] == sorted(sizes)


@sync
async def test_import_a_gguf_from_the_library(engine, library: Path, tmp_path: Path) -> None:
    """A GGUF in a Library folder is listed; i imports it on the engine thread and selects the result."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from gguf_tiny import write_gguf
    from temper.core.library.synthetic import train_tokenizer

    train_tokenizer(tmp_path / "tok", vocab_size=300)
    write_gguf(library / "tiny-q8.gguf", tmp_path / "tok", qtype="Q8_0")
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _loaded(pilot, app)
        row = next(i for i, m in enumerate(view.shown) if m.source == "gguf")
        app.query_one("#library-table", DataTable).move_cursor(row=row)
        await pilot.press("c")  # not openable as it is
        await pilot.pause()
        assert app.opened == []
        await pilot.press("i")
        for _ in range(200):
            await pilot.pause(0.05)
            if (models_dir() / "tiny-q8").exists() and view.loaded and view.highlighted is not None \
                    and view.highlighted.source == "temper" and view.highlighted.name == "tiny-q8":
                break
        assert view.highlighted.name == "tiny-q8" and view.highlighted.quantization == "uniform 8-bit g32"


@sync
async def test_select_model_highlights_it(engine, library: Path) -> None:
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LibraryView)
        view.select_model(models_dir() / "tiny-llama")  # asked before the first scan returns
        await _loaded(pilot, app)
        await pilot.pause()
        assert view.highlighted is not None and view.highlighted.name == "tiny-llama"


@sync
async def test_i_on_a_folder_model_asks_for_a_gguf_path(engine, library: Path, tmp_path: Path) -> None:
    """Before: i on anything but a listed GGUF only showed a toast. Now it asks for the file and imports it."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
    from gguf_tiny import write_gguf
    from temper.core.library.synthetic import train_tokenizer
    from temper.tui.widgets.quant_dialogs import PathPrompt

    train_tokenizer(tmp_path / "tok", vocab_size=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_gguf(outside / "typed-q8.gguf", tmp_path / "tok", qtype="Q8_0")
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _loaded(pilot, app)
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, PathPrompt)
        app.screen.query_one(Input).value = str(outside / "typed-q8.gguf")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.05)
            if (models_dir() / "typed-q8").exists() and view.highlighted is not None \
                    and view.highlighted.name == "typed-q8":
                break
        assert (models_dir() / "typed-q8" / "config.json").is_file()


@sync
async def test_hub_search_says_searching_while_it_waits(engine, library: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from temper.tui.screens import hub_search

    release = threading.Event()
    monkeypatch.setattr(hub_search, "search", lambda query, mlx_only=True: release.wait(10) and [])
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("s", *"tiny", "enter")
        await pilot.pause()
        assert "searching 'tiny'…" in str(app.screen.query_one("#hub-status").render())
        release.set()


@sync
async def test_the_details_pane_shows_every_line_at_80x24(engine, library: Path) -> None:
    """Before: a fixed five lines; wrapped at 80 columns the last (the keys) was cut off."""
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _loaded(pilot, app)
        pane = app.query_one("#library-details")
        for _ in view.shown:
            await pilot.pause()
            wanted = str(pane.render()).strip().splitlines()[-1].split()[-1]
            shown = " ".join(pane.render_line(y).text for y in range(pane.size.height))
            assert wanted in shown, (wanted, shown)
            await pilot.press("down")


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_every_column_shown_fits_the_width(engine, library: Path, size) -> None:
    """Before: at 80 columns "Vis" and "Source" were cut to "V" and nothing (both are in the details pane)."""
    @sync
    async def check() -> None:
        app = RecordingApp(engine=engine)
        async with app.run_test(size=size) as pilot:
            await _loaded(pilot, app)
            table = app.query_one("#library-table", DataTable)
            widths = sum(c.get_render_width(table) for c in table.columns.values())
            assert widths <= table.content_region.width, (widths, table.content_region)
            keys = [str(c.key.value) for c in table.columns.values()]
            assert keys[:6] == ["name", "arch", "params", "size", "quant", "bpw"]
            assert ("source" in keys) == (size[0] >= 100)

    check()


@sync
async def test_columns_follow_a_resize(engine, library: Path) -> None:
    """Before: the columns were chosen once at mount, so a terminal narrowed from 100 to 80 columns kept Vis and
    Source cut off (seen in the tmux tour), and one widened later never got them back."""
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _loaded(pilot, app)
        table = app.query_one("#library-table", DataTable)

        def keys() -> list[str]:
            return [str(c.key.value) for c in table.columns.values()]
        assert "source" in keys() and table.row_count == 3
        await pilot.press("down")
        chosen = view.highlighted
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        assert "source" not in keys() and "vision" not in keys() and table.row_count == 3
        assert view.highlighted == chosen
        widths = sum(c.get_render_width(table) for c in table.columns.values())
        assert widths <= table.content_region.width
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.1)
        assert "source" in keys() and table.row_count == 3


@sync
async def test_a_long_name_keeps_the_narrow_table_within_the_screen(engine, library: Path, tiny_llama: Path) -> None:
    """At 80 columns (Vis and Source folded into the details) a quantized copy's long name is cut in the middle
    so that every shown column fits; at 100 the name gets more room."""
    shutil.copytree(tiny_llama, models_dir() / "SmolLM2-135M-Instruct-bf16-temper-4.5bpw")
    app = RecordingApp(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        table = app.query_one("#library-table", DataTable)
        await pilot.pause()
        widths = [c.get_render_width(table) for c in table.columns.values()]
        assert len(widths) == 6 and sum(widths) <= 80, widths
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "SmolLM2-135M-…emper-4.5bpw" in names
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.2)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "SmolLM2-135M-In…-temper-4.5bpw" in names and len(table.columns) == 8
