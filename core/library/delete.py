"""Delete a model from disk: Hugging Face cache entries through huggingface_hub's delete strategy,
folders with rmtree, GGUF files in the user's folders with unlink. Only inside known roots (the HF cache, temper's models folder, the user's
Library folders): a path anywhere else is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import TemperError
from ..paths import models_dir
from .folders import folders
from .inspect import is_model_folder
from .scan import hf_cache_dir


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root.resolve())
        return True
    except ValueError:
        return False


def delete_model(path: str | Path) -> int:
    """Delete the model at `path`; return the bytes freed. Raises TemperError when refused."""
    target = Path(path).expanduser()
    if not target.exists():
        raise TemperError(f"{path}: no such model folder")
    # Do not resolve the folder itself: in the HF cache a snapshot is a real folder of symlinks.
    resolved = target.parent.resolve() / target.name
    cache = hf_cache_dir()
    gguf = resolved.is_file() and resolved.suffix == ".gguf"
    if cache.is_dir() and _inside(resolved, cache):
        if gguf:
            raise TemperError(f"{resolved.name} is one file of a Hugging Face cache repo: delete the repo with "
                              "`hf cache delete` instead")
        return _delete_cached(resolved, cache)
    if not gguf and not is_model_folder(resolved):
        raise TemperError(f"{resolved} is not a model folder: refusing to delete it")
    roots = [models_dir(), *folders()]
    if not any(_inside(resolved, root) for root in roots if root.exists()):
        raise TemperError(f"{resolved} is outside temper's models folder and your Library folders: "
                          "refusing to delete it")
    if gguf:
        freed = resolved.stat().st_size
        resolved.unlink()
        return freed
    freed = sum(f.stat().st_size for f in resolved.rglob("*") if f.is_file())
    shutil.rmtree(resolved)
    return freed


def _delete_cached(snapshot: Path, cache: Path) -> int:
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    for repo in info.repos:
        if _inside(snapshot, Path(repo.repo_path)):
            strategy = info.delete_revisions(*(r.commit_hash for r in repo.revisions))
            freed = strategy.expected_freed_size
            strategy.execute()
            return freed
    raise TemperError(f"{snapshot} is in the Hugging Face cache but not a cached model: refusing to delete it")
