"""Find and load a model: a folder, or a Hub id already in the local cache. Clear one-line errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class _NoSequenceLengthWarning(logging.Filter):
    """transformers warns "Token indices sequence length is longer than the specified maximum sequence length"
    when a tokenizer's model_max_length (often a stale 2048 in tokenizer_config.json) is shorter than a
    conversation or a calibration text. temper checks context against the model's config itself; the
    warning only tore through chat output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token indices sequence length is longer")


logging.getLogger("transformers.tokenization_utils_base").addFilter(_NoSequenceLengthWarning())


@dataclass
class LoadedModel:
    """A model and tokenizer living on the engine thread."""

    path: Path
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def resolve(path_or_id: str | Path) -> Path:
    """A local folder as it is; a Hub id through the local Hugging Face cache only (never downloads); a bare
    name as the Library lists it (exact, else a unique prefix: `temper chat SmolLM2-135M-Instruct`)."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_id)
    if isinstance(path_or_id, str) and text and "/" not in text and not text.startswith(("~", ".")):
        found = _library_model(text)
        if found is not None:
            return found
    if _HUB_ID.match(text):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(text, local_files_only=True))
        except Exception as exc:
            raise ModelLoadError(
                f"{text} is not in the local Hugging Face cache: download it first (temper library download {text})"
            ) from exc
    raise ModelLoadError(f"{text}: no such folder")


def _library_model(name: str) -> Path | None:
    """The folder of the Library's model called `name` (a unique prefix will do); None where none is."""
    from ..errors import TemperError
    from ..library.scan import find

    try:
        info = find(name)
    except TemperError as exc:           # several match: say which
        raise ModelLoadError(str(exc)) from exc
    if info is None:
        return None
    if info.details.get("gguf"):
        raise ModelLoadError(f"{info.name} is a GGUF file: import it first (temper library import {info.path})")
    return info.path


def read_config(path: Path) -> dict[str, Any]:
    from ..library.check import read_config as read

    return read(path)


def validate(path: Path) -> dict[str, Any]:
    """Check a folder without loading weights (temper.core.library.check); return its config."""
    from ..library.check import check_model_folder

    return check_model_folder(path)


def open_model(path: Path, *, lazy: bool = False, finite: bool = True,
               check: Callable[[], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Check the folder, then build the model with mlx-lm's strict load (every tensor the architecture
    expects, with its shape) and, unless `lazy`, refuse NaN/Inf weights. Every failure is one
    ModelLoadError naming the folder. Must run on the engine thread (it creates MLX arrays)."""
    from mlx_lm.utils import load_model

    validate(path)
    try:
        model, config = load_model(path, lazy=lazy)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: weights do not match the config ({_short(exc)})") from exc
    if finite and not lazy:
        from .finite import check_model

        check_model(model, path, check)
    return model, config


def open_tokenizer(path: Path, eos_token_ids: Any = None) -> Any:
    from mlx_lm.utils import load_tokenizer

    try:
        return load_tokenizer(path, eos_token_ids=eos_token_ids)
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: cannot load its tokenizer ({_short(exc)})") from exc


def load(path_or_id: str | Path, *, lazy: bool = False, compute: str = "auto") -> LoadedModel:
    """Load with mlx-lm. Must run on the engine thread (it creates MLX arrays).

    `compute` ("auto" | "native" | "fp32"): on MLX's CPU backend, "auto" runs bf16/fp16 models in fp32 and
    dequantizes quantized ones when a fast BLAS is loaded and the fp32 weights fit (temper.core.accel.compute);
    the decision is in `extra["compute"]`. Never changes anything on Metal or CUDA."""
    path = resolve(path_or_id)
    model, config = open_model(path, lazy=lazy)
    tokenizer = open_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    from ..accel.compute import maybe_upcast

    plan = maybe_upcast(model, compute)
    return LoadedModel(path=path, model=model, tokenizer=tokenizer, config=config, extra={"compute": plan})


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) < 160 else text[:157] + "..."
