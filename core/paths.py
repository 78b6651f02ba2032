"""Where temper keeps its files. TEMPER_HOME overrides everything (tests use it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _home() -> Path | None:
    value = os.environ.get("TEMPER_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    if (home := _home()) is not None:
        return home / "config"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "temper"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "temper"


def data_dir() -> Path:
    if (home := _home()) is not None:
        return home / "data"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "temper"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "temper"


def models_dir() -> Path:
    """Where quantized models, imported GGUF files and the demo model go: the `output_folder` setting,
    else temper's own data folder. A broken settings file falls back to the default."""
    from . import settings  # late: settings itself needs config_dir()

    chosen, _ = settings.load()
    if chosen.output_folder:
        return Path(chosen.output_folder).expanduser()
    return data_dir() / "models"


def jobs_dir() -> Path:
    return data_dir() / "jobs"


def ensure_private(path: Path) -> None:
    """temper's data folder (conversations, job records, sensitivity tables) is its owner's only: 0700.
    Called before anything is written below it; tightens a folder an older temper made 0755."""
    data = data_dir()
    target = Path(path).expanduser().absolute()
    if target != data and data not in target.parents:
        return
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    if data.stat().st_mode & 0o077:
        os.chmod(data, 0o700)
