"""Find local models: the Hugging Face cache, the user's folders, and temper's own models folder.

Reads config.json and safetensors headers only, never weights, so a scan of dozens of models is fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import TemperError
from ..paths import models_dir
from .folders import folders as configured_folders
from .gguf_files import gguf_files, inspect_gguf
from .inspect import inspect_model, is_model_folder
from .model_info import ModelInfo


def hf_cache_dir() -> Path:
    """The hub cache as huggingface_hub would pick it, read from the environment at call time."""
    if value := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(value).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(Path.home(), ".cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def scan_hf_cache(cache_dir: Path | None = None, *, include_gguf: bool = True) -> list[ModelInfo]:
    cache = cache_dir or hf_cache_dir()
    if not cache.is_dir():
        return []
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache)
    except Exception:
        return []
    found = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revisions = sorted(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified), reverse=True)
        snapshot = Path(revisions[0].snapshot_path)
        if is_model_folder(snapshot):
            found.append(inspect_model(snapshot, source="hf-cache", name=repo.repo_id))
        elif include_gguf:
            found.extend(inspect_gguf(f) for f in gguf_files(snapshot, depth=2))
    return found


def model_folders(root: Path) -> Iterable[Path]:
    """`root` itself if it is a model, else its model sub-folders (one level, hidden ones skipped)."""
    if is_model_folder(root):
        yield root
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        if is_model_folder(child):
            yield child


def scan(extra_folders: Iterable[str | Path] | None = None, *, include_hf_cache: bool = True,
         include_gguf: bool = True) -> list[ModelInfo]:
    """Every local model, deduplicated by resolved path, sorted by name. GGUF files found in the
    user's folders (and GGUF-only repos in the HF cache) are listed too, as importable rows."""
    seen: set[Path] = set()
    out: list[ModelInfo] = []

    def add(info: ModelInfo) -> None:
        key = info.path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(info)

    from ..partials import clean

    for root in (models_dir(), *configured_folders()):
        clean(root)                      # half-written folders left by killed writers
    for folder in models_folders_of(models_dir()):
        add(inspect_model(folder, source="temper"))
    roots = [*configured_folders(), *(Path(f).expanduser() for f in (extra_folders or ()))]
    for root in roots:
        for folder in model_folders(root):
            add(inspect_model(folder, source="folder"))
        if include_gguf:
            for file in gguf_files(root):
                add(inspect_gguf(file))
    if include_hf_cache:
        for info in scan_hf_cache(include_gguf=include_gguf):
            add(info)
    return sorted(out, key=lambda i: i.name.lower())


def models_folders_of(root: Path) -> list[Path]:
    return list(model_folders(root)) if root.is_dir() else []


def find(query: str | Path, models: list[ModelInfo] | None = None) -> ModelInfo | None:
    """A model by path, Hub id or name (exact, then a unique prefix)."""
    path = Path(query).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        for info in models or []:
            if info.path.resolve() == resolved:
                return info
        return inspect_model(path)
    models = models if models is not None else scan()
    text = str(query)
    exact = [m for m in models if text in (m.name, m.path.name)]
    if exact:  # a model folder before a GGUF file of the same name, a working one before a broken one
        return sorted(exact, key=lambda m: (bool(m.details.get("gguf")), m.error is not None))[0]
    prefix = [m for m in models if m.name.lower().startswith(text.lower())]
    if len(prefix) > 1:
        names = ", ".join(f"{m.name} ({m.source})" for m in prefix[:4])
        raise TemperError(f"{text!r} matches {len(prefix)} models ({names}): give the full name or a path")
    return prefix[0] if prefix else None
