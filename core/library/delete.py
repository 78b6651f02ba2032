"""Delete a model from disk: Hugging Face cache entries through huggingface_hub's delete strategy,
folders with rmtree, GGUF files in the user's folders with unlink. Only inside known roots (the HF cache, temper's models folder, the user's
Library folders): a path anywhere else is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import TemperError
from ..paths import models_dir
from .folders import folders
from .inspect import is_model_folder
from .scan import hf_cache_dir
from .service import mark_changed


def _inside(path: Path, root: Path) -> bool:
    """`path` lies strictly below `root` (both compared resolved: `..` and links cannot step out)."""
    return root.resolve() in path.parents


def _where(target: Path) -> Path:
    """The entry the user named, with `..`, `.` and links in the folders above it resolved, but not the entry
    itself (in the HF cache a snapshot is a real folder of symlinks; a linked model is deleted as a link)."""
    absolute = Path(os.path.abspath(target))      # folds `x/..` textually, before any link is followed
    return absolute.parent.resolve() / absolute.name


def delete_model(path: str | Path) -> int:
    """Delete the model at `path`; return the bytes freed. Raises TemperError when refused."""
    try:
        return _delete(path)
    finally:
        mark_changed()                            # even a half-done delete changes what a scan finds


def _delete(path: str | Path) -> int:
    target = Path(path).expanduser()
    if not target.exists() and not target.is_symlink():
        raise TemperError(f"{path}: no such model folder")
    resolved = _where(target)
    cache = hf_cache_dir()
    roots = [root.resolve() for root in (models_dir(), *folders()) if root.exists()]
    if resolved.is_symlink() and not (cache.is_dir() and _inside(resolved, cache)):
        # A link in a Library folder: remove the link, never what it points to.
        if not any(_inside(resolved, root) for root in roots):
            raise TemperError(f"{resolved} is outside temper's models folder and your Library folders: "
                              "refusing to delete it")
        resolved.unlink()
        return 0
    gguf = resolved.is_file() and resolved.suffix == ".gguf"
    if cache.is_dir() and _inside(resolved, cache):
        if gguf:
            raise TemperError(f"{resolved.name} is one file of a Hugging Face cache repo: delete the repo with "
                              "`hf cache delete` instead")
        return _delete_cached(resolved, cache)
    if not gguf and not is_model_folder(resolved):
        raise TemperError(f"{resolved} is not a model folder: refusing to delete it")
    if not any(_inside(resolved, root) for root in roots):
        raise TemperError(f"{resolved} is outside temper's models folder and your Library folders: "
                          "refusing to delete it")
    held = [root for root in roots if _inside(root, resolved)]
    if held:
        raise TemperError(f"{resolved} holds the Library folder {held[0]}: refusing to delete it")
    if gguf:
        freed = resolved.stat().st_size
        resolved.unlink()
        return freed
    freed = sum(f.stat().st_size for f in resolved.rglob("*") if f.is_file() and not f.is_symlink())
    shutil.rmtree(resolved)
    return freed


def _delete_cached(snapshot: Path, cache: Path) -> int:
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    for repo in info.repos:
        repo_path = Path(repo.repo_path).resolve()
        if snapshot == repo_path or _inside(snapshot, repo_path):
            strategy = info.delete_revisions(*(r.commit_hash for r in repo.revisions))
            freed = strategy.expected_freed_size
            strategy.execute()
            return freed
    raise TemperError(f"{snapshot} is in the Hugging Face cache but not a cached model: refusing to delete it")
