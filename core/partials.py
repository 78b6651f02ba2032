"""Half-written output folders: each names the process writing it, so one left by a killed process can be
told from one still being written and removed at the next start (quantize, library scan, import).

A writer's temporary folder is `.NAME.pid<PID>@<HOST>.<random>.partial` beside its target (core/atomic.py).
A folder whose writer is gone (same host, no such process) is stale. Folders of another host, or of the old
`.NAME.<random>.partial` form, are left alone: nothing says their writer is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

_PARTIAL = re.compile(r"^\..+\.pid(\d+)@([^.]*)\..+\.partial$")


def prefix(name: str) -> str:
    return f".{name}.pid{os.getpid()}@{_host()}."


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]


def writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale(folder: Path) -> list[Path]:
    """Partial folders in `folder` whose writer (on this host) is no longer running."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        m = _PARTIAL.match(entry.name)
        if m and m.group(2) == _host() and entry.is_dir() and not entry.is_symlink() \
                and not writer_alive(int(m.group(1))):
            found.append(entry)
    return sorted(found)


def clean(folder: Path) -> list[Path]:
    """Remove the stale partial folders in `folder`; return what was removed."""
    removed = []
    for entry in stale(folder):
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed
