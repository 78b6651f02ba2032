"""One cached library scan: reused until temper changes the library (a model folder published by
core/atomic.folder, a delete, a download) or a refresh is asked; two callers at once share one scan."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from temper.core import atomic
from temper.core.library.delete import delete_model
from temper.core.library.service import LibraryService, mark_changed
from temper.core.paths import models_dir


def test_the_scan_is_cached_until_temper_changes_the_library(tiny_llama: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    service = LibraryService()
    assert service.cached() is None
    shutil.copytree(tiny_llama, models_dir() / "one")
    assert [m.name for m in service.models()] == ["one"]
    assert [m.name for m in service.models()] == ["one"] and service.scans == 1
    assert [m.name for m in service.cached() or []] == ["one"]

    with atomic.folder(models_dir() / "two") as tmp:     # what quantize, import and float copy publish through
        for f in tiny_llama.iterdir():
            shutil.copy(f, tmp / f.name)
    assert service.cached() is None                      # stale at once, for every service
    assert [m.name for m in service.models()] == ["one", "two"] and service.scans == 2

    delete_model(models_dir() / "one")
    assert service.cached() is None
    assert [m.name for m in service.models()] == ["two"] and service.scans == 3

    shutil.copytree(tiny_llama, models_dir() / "three")  # made outside temper: only a refresh sees it
    assert [m.name for m in service.models()] == ["two"] and service.scans == 3
    assert [m.name for m in service.models(refresh=True)] == ["three", "two"] and service.scans == 4


def test_callers_at_once_share_one_scan() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow(_extra):
        calls.append(1)
        release.wait(10)
        return []

    service = LibraryService(scan=slow)
    mark_changed()
    results: list[list] = []
    threads = [threading.Thread(target=lambda: results.append(service.models())) for _ in range(3)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert results == [[], [], []] and len(calls) == 1 and service.scans == 1
