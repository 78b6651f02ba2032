"""Atomic writes: write beside the target, then rename. A crash leaves the old file or nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """A new file is its owner's only (0600, like every file temper keeps for itself); a replaced file keeps
    its mode."""
    from .paths import ensure_private

    path = Path(path)
    ensure_private(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_modes(root: Path) -> None:
    """Folders 0777 and files 0666 less the umask, as if made by mkdir and cp; links untouched."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o777 & ~mask)
        for name in filenames:
            file = os.path.join(dirpath, name)
            if not os.path.islink(file):
                os.chmod(file, 0o666 & ~mask)


# Temporary folders this process is writing: an interrupted command removes them on its way out.
ACTIVE: set[Path] = set()


@contextlib.contextmanager
def folder(path: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path`, on failure it is removed.

    The temporary folder's name carries this process's id (core/partials.py): if the process is killed,
    the next start sees its writer is gone and removes it. One rule for the modes of what lands: a model
    folder is an ordinary folder, made as `mkdir` and `cp` would under the user's umask (0755/0644 with
    the usual 022), whatever the writers inside used (mkdtemp's 0700, mkstemp's 0600)."""
    from .partials import prefix
    from .paths import ensure_private

    path = Path(path)
    ensure_private(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix(path.name), suffix=".partial", dir=path.parent))
    ACTIVE.add(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        ACTIVE.discard(tmp)
        raise
    ACTIVE.discard(tmp)
    umask_modes(tmp)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    from .library.service import mark_changed

    mark_changed()                              # a model folder landed: cached library scans are stale
