"""Where a quantized model may be written, and what an overwrite may replace.

One rule for every route into quantization (CLI, app, pipeline, writer): the output folder must not be the
source model, hold it, or lie inside it; and an existing folder is replaced only when the user asked
(`force`) and it is a model folder (temper's own output or any folder with config.json/safetensors) or an
empty folder. Anything else (a folder of notes, a models root, a home folder) is refused, so a typo in
`-o` can never delete data."""

from __future__ import annotations

from pathlib import Path

from ..errors import QuantError
from ..library.inspect import is_model_folder
from .plan import PLAN_FILE


def _contains(outer: Path, inner: Path) -> bool:
    """True when `inner` is `outer` or lies anywhere below it (both resolved)."""
    return inner == outer or outer in inner.parents


def _size(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file() and not f.is_symlink()]
    return len(files), sum(f.stat().st_size for f in files)


def check_output(out: Path, source: Path | None, *, force: bool) -> str | None:
    """Refuse an unsafe output folder (QuantError, one line). Returns None when `out` is new, else a line
    saying what the write will replace (for the CLI and the app to show before they start)."""
    out = Path(out).expanduser()
    target = out.resolve()
    if source is not None:
        src = Path(source).expanduser().resolve()
        if _contains(target, src):
            what = "is the source model's folder" if target == src else f"holds the source model ({src})"
            raise QuantError(f"{out} {what}: writing there would delete it; choose another output folder")
        if _contains(src, target):
            raise QuantError(f"{out} is inside the source model's folder {src}: choose another output folder")
    if not out.exists() and not out.is_symlink():
        return None
    if out.is_symlink() or not out.is_dir():
        raise QuantError(f"{out} exists and is not a folder: choose another output folder")
    if not force:
        raise QuantError(f"{out} already exists: choose another output folder or pass --force")
    entries = list(out.iterdir())
    if not entries:
        return f"replacing the empty folder {out}"
    if not is_model_folder(out):
        names = ", ".join(sorted(p.name for p in entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise QuantError(f"{out} is not a model folder (it holds {names}): --force replaces only model "
                         "folders; choose another output folder")
    count, size = _size(out)
    kind = "temper output" if (out / PLAN_FILE).is_file() else "model folder"
    return f"replacing the {kind} {out} ({count} files, {size / 1e6:.1f} MB)"
