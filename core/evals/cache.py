"""Eval results cached on (model content hash, task, settings), so a re-run of the table costs nothing.

One JSON file per key under temper's data folder (evals/), written atomically. The key holds everything
that changes the figure: the model's content hash (core.quant.tensors.model_hash), the task, its data
file's hash, the prompt format version, --limit, the generation cap and the sandbox limits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import atomic, paths


def key(model_hash: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"model": model_hash, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def folder() -> Path:
    return paths.data_dir() / "evals"


def load(k: str) -> dict[str, Any] | None:
    path = folder() / f"{k[:32]}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == k else None


def save(k: str, result: dict[str, Any]) -> None:
    atomic.write_text(folder() / f"{k[:32]}.json", json.dumps({"key": k, **result}, indent=1))
