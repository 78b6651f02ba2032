"""One cached library scan, shared by the Library and Quantize tabs (and any other reader).

A scan reads headers of every model folder, GGUF file and Hugging Face cache entry: on a large library that
takes seconds, so it never runs on a UI thread and never runs twice for the same state. `LibraryService`
keeps the last scan and hands it out until the library changes. Changes made by temper itself (a model
folder published by core/atomic.folder: quantize, import, float copy; a delete; a Hub download) call
`mark_changed()`, which invalidates every service's cache; changes made outside temper are picked up by an
explicit `refresh` (the Library tab's `r`).

`models()` may block (it scans when the cache is stale): call it from a worker thread. `cached()` never
blocks and returns None until a scan has finished. Two threads asking at once share one scan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .model_info import ModelInfo

_changes = 0
_changes_lock = threading.Lock()


def mark_changed() -> None:
    """Something under temper's model roots was written or removed: every cached scan is stale."""
    global _changes
    with _changes_lock:
        _changes += 1


def changes() -> int:
    """How many times the library changed in this process (a cache compares it with its own)."""
    return _changes


def _default_scan(extra_folders: list[Path]) -> list[ModelInfo]:
    from .scan import scan

    return scan(extra_folders)


class LibraryService:
    def __init__(self, extra_folders: Iterable[str | Path] = (),
                 scan: Callable[[list[Path]], list[ModelInfo]] | None = None) -> None:
        self.extra_folders = [Path(f).expanduser() for f in extra_folders]
        self._scan = scan or _default_scan
        self._lock = threading.Lock()            # one scan at a time; a second caller waits and reuses it
        self._models: list[ModelInfo] | None = None
        self._seen = -1                          # changes() when the cached scan started
        self.scans = 0                           # how many scans ran (tests pin the cache with it)

    def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every local model (as scan.scan lists them). Blocks while a scan runs: call it from a worker."""
        with self._lock:
            if refresh or self._models is None or self._seen != changes():
                seen = changes()                 # read before scanning: a change during the scan stays stale
                self._models = list(self._scan(self.extra_folders))
                self._seen = seen
                self.scans += 1
            return list(self._models)

    def cached(self) -> list[ModelInfo] | None:
        """The last scan if it is still current, else None. Never blocks on a scan in flight."""
        models, seen = self._models, self._seen
        return list(models) if models is not None and seen == changes() else None

    def invalidate(self) -> None:
        """Forget the cached scan (the next `models()` scans again)."""
        self._models = None
