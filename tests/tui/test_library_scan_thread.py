"""The library scan never runs on the UI thread: mounting the Library and Quantize tabs (and switching to
them) with a scan that blocks until released leaves the app answering keys; both tabs share one scan.

Before: the Quantize tab called scan() on the UI thread when it mounted (QuantClient.models), so a large
library froze the whole app at start."""

from __future__ import annotations

import threading

import pytest
from shell_app import new_app
from temper.core.library.service import LibraryService
from textual.widgets import Static

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_blocked_scan_leaves_the_app_answering(engine) -> None:
    release, started = threading.Event(), threading.Event()
    seen: list[tuple[bool, bool]] = []           # (ran on the UI thread, waited out its timeout)
    ui_thread = threading.current_thread()

    def slow_scan(_extra):
        started.set()
        timed_out = not release.wait(8)          # on the UI thread nobody could release it: it times out
        seen.append((threading.current_thread() is ui_thread, timed_out))
        return []

    service = LibraryService(scan=slow_scan)
    app = new_app(engine, library=service)
    async with app.run_test(size=(100, 30)) as pilot:
        assert started.wait(5)
        await pilot.press("f2")                  # the Quantize tab, while the scan is still blocked
        await pilot.pause()
        assert app.active_tab == "quantize" and not release.is_set()
        assert "Reading the library" in str(app.query_one("#model-facts", Static).render())
        await pilot.press("f1")
        await pilot.pause()
        assert app.active_tab == "library"
        assert "scanning" in str(app.query_one("#library-status", Static).render())
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "0/0 models" in str(app.query_one("#library-status", Static).render())
    assert seen and all(not on_ui and not timed_out for on_ui, timed_out in seen)
    assert service.scans == 1                    # the Library and Quantize tabs shared one scan


async def test_a_model_written_while_away_shows_when_the_tab_is_shown_again(engine, tmp_path) -> None:
    """A quantize publishes its folder (core/atomic marks the library changed): back on the Library tab the new
    model is listed without pressing r; with nothing changed, showing the tab scans nothing."""
    from temper.core.library.model_info import ModelInfo
    from temper.core.library.service import mark_changed

    def info(name: str) -> ModelInfo:
        return ModelInfo(name=name, path=tmp_path / name, source="folder", architecture="llama", parameters=1000,
                         size_bytes=2000, quantization="none", bits_per_weight=16.0)

    listed = [info("base")]
    service = LibraryService(scan=lambda _extra: list(listed))
    app = new_app(engine, library=service)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "1/1 models" in str(app.query_one("#library-status", Static).render())
        await pilot.press("f2")
        await pilot.pause()
        await pilot.press("f1")                  # nothing changed: the cached scan, no new one
        await app.workers.wait_for_complete()
        await pilot.pause()
        scans = service.scans
        await pilot.press("f2")
        listed.append(info("base-4.5bpw"))
        mark_changed()                           # what the quantize's atomic publish does
        await pilot.press("f1")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "2/2 models" in str(app.query_one("#library-status", Static).render())
        assert service.scans == scans + 1
